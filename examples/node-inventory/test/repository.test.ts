// The repository against a real Annals database, as the service's own login (annals_writer and
// annals_bi, no table privileges).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'pg';
import { WrongExpectedVersionError } from '../src/errors';
import { InsufficientInventoryError, InventoryItem, ItemExistsError, streamId } from '../src/inventory';
import { InventoryRepository, SNAPSHOT_TYPE, SNAPSHOT_VERSION } from '../src/repository';
import { appPool, createScratchDb, type ScratchDb } from './db';

let db: ScratchDb;
let pool: Pool; // the service's login
let admin: Pool; // a superuser, to look behind the API

before(async () => {
    db = await createScratchDb();
    pool = appPool(db, 25);
    admin = new Pool({ connectionString: db.adminUrl, max: 2 });
});

after(async () => {
    await pool?.end();
    await admin?.end();
    await db?.drop();
});

async function streamVersion(sku: string): Promise<number> {
    const res = await admin.query('SELECT stream_version FROM annals.stream_info($1)', [streamId(sku)]);
    return res.rows[0] === undefined ? 0 : Number(res.rows[0].stream_version);
}

describe('InventoryRepository', () => {
    it('stores the guide story and rebuilds the item from its events', async () => {
        const repo = new InventoryRepository(pool);
        await repo.addItem('42', 'Blue widget', 10);
        await repo.adjustCount('42', -3, 'sale');
        const item = await repo.adjustCount('42', 5, 'delivery');
        assert.equal(item.count, 12);
        assert.equal(item.version, 3);

        const loaded = await repo.load('42');
        assert.deepEqual(loaded.snapshot(), { sku: '42', name: 'Blue widget', count: 12, exists: true });
        assert.equal(loaded.version, 3);

        // What the database holds: jsonb comes back as objects, bigints as strings.
        const res = await pool.query('SELECT stream_version, event_type, data FROM annals.read_stream($1)', [streamId('42')]);
        assert.deepEqual(
            res.rows.map((r) => [r.stream_version, r.event_type, r.data]),
            [
                ['1', 'ItemAdded', { sku: '42', name: 'Blue widget', count: 10 }],
                ['2', 'ItemAdjusted', { delta: -3, reason: 'sale' }],
                ['3', 'ItemAdjusted', { delta: 5, reason: 'delivery' }],
            ],
        );
    });

    it('rejects an overdraw and appends nothing', async () => {
        const repo = new InventoryRepository(pool);
        await repo.addItem('43', 'Gear', 2);
        await assert.rejects(repo.adjustCount('43', -3, 'sale'), (err: unknown) => {
            return err instanceof InsufficientInventoryError && err.available === 2 && err.requested === 3;
        });
        await assert.rejects(repo.addItem('43', 'Gear', 2), ItemExistsError);
        assert.equal(await streamVersion('43'), 1);
    });

    it('reads the inline projection the Go example registers, current inside the appending transaction', async () => {
        const repo = new InventoryRepository(pool);
        assert.equal(await repo.itemCount('44'), undefined);
        const item = await repo.load('44');
        item.add('44', 'Red gear', 7);
        item.adjust(-2, 'sale'); // two events: one append_events call
        let inside;
        await repo.save(item, async (client) => {
            inside = await repo.itemCount('44', client);
        });
        assert.deepEqual({ ...inside!, updatedAt: undefined }, { sku: '44', name: 'Red gear', count: 5, version: 2, updatedAt: undefined });
        const row = await repo.itemCount('44');
        assert.equal(row?.count, 5);
        assert.equal(row?.version, 2);
        assert.ok(row?.updatedAt instanceof Date);

        await repo.adjustCount('44', 10, 'delivery'); // one event: append_event
        assert.deepEqual(
            { count: (await repo.itemCount('44'))?.count, version: (await repo.itemCount('44'))?.version },
            { count: 15, version: 3 },
        );
    });

    it('clears pending events only after the commit', async () => {
        const repo = new InventoryRepository(pool);
        const item = await repo.load('45');
        item.add('45', 'Blue gear', 3);

        // The append succeeds, but the transaction does not commit: the events stay pending.
        await assert.rejects(
            repo.save(item, async () => {
                throw new Error('the caller\'s own write failed');
            }),
            /the caller's own write failed/,
        );
        assert.equal(item.pendingEvents.length, 1);
        assert.equal(item.version, 0);
        assert.equal(await streamVersion('45'), 0);
        assert.equal(await repo.itemCount('45'), undefined);

        // The same pending events, saved again, commit.
        const result = await repo.save(item);
        assert.equal(result?.streamVersion, 1);
        assert.deepEqual(item.pendingEvents, []);
        assert.equal(item.version, 1);

        // A conflict leaves them pending too, with the version the item was loaded at.
        const a = await repo.load('45');
        const b = await repo.load('45');
        a.adjust(-1, 'sale');
        b.adjust(-2, 'sale');
        await repo.save(a);
        await assert.rejects(repo.save(b), (err: unknown) => {
            return err instanceof WrongExpectedVersionError && err.streamId === 'inventory-45' && err.expected === 1 && err.actual === 2;
        });
        assert.equal(b.pendingEvents.length, 1);
        assert.equal(b.version, 1);
        assert.equal(await streamVersion('45'), 2);
    });

    it('sends pending events again safely: resending an append that committed is a replay', async () => {
        const repo = new InventoryRepository(pool);
        const item = await repo.load('49');
        item.add('49', 'Lost reply', 1);
        // The append committed but its reply was lost (say the connection broke): the same
        // events, ids included, are already stored when the item is saved again.
        const e = item.pendingEvents[0]!;
        await pool.query('SELECT * FROM annals.append_event(stream_id => $1, expected_version => 0, event_type => $2, data => $3::jsonb, event_id => $4)', [
            streamId('49'), e.type, JSON.stringify(e.data), e.id,
        ]);
        const result = await repo.save(item);
        assert.equal(result?.streamVersion, 1);
        assert.deepEqual(item.pendingEvents, []);
        assert.equal(await streamVersion('49'), 1);
        assert.equal((await repo.itemCount('49'))?.count, 1);
    });

    it('lets 20 racing writers all succeed by retrying on ST409: exactly 21 versions', async (t) => {
        let conflicts = 0;
        const repo = new InventoryRepository(pool, { maxAttempts: 20, onConflict: () => conflicts++ });
        await repo.addItem('46', 'Racing widget', 100);
        // Each conflict means another writer committed between this writer's load and its
        // append; with 19 others, 20 attempts always suffice.
        const items = await Promise.all(Array.from({ length: 20 }, (_, i) => repo.adjustCount('46', i % 2 === 0 ? 3 : -1, `writer ${i}`)));
        assert.deepEqual(items.map((it) => it.version).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 2));

        t.diagnostic(`${conflicts} conflicts retried`);

        const res = await admin.query('SELECT stream_version FROM annals.read_stream($1)', [streamId('46')]);
        assert.deepEqual(res.rows.map((r) => Number(r.stream_version)), Array.from({ length: 21 }, (_, i) => i + 1));
        const loaded = await repo.load('46');
        assert.equal(loaded.version, 21);
        assert.equal(loaded.count, 100 + 10 * 3 - 10);
        assert.deepEqual(
            { count: (await repo.itemCount('46'))?.count, version: (await repo.itemCount('46'))?.version },
            { count: 120, version: 21 },
        );
    });

    it('writes snapshots and loads from them', async () => {
        const repo = new InventoryRepository(pool, { snapshotEvery: 5 });
        await repo.addItem('47', 'Snap widget', 50);
        for (let i = 0; i < 6; i++) await repo.adjustCount('47', -1, 'sale');

        // One snapshot, at version 5 (five events past none), in the Go example's shape.
        const snap = await pool.query('SELECT stream_version, state FROM annals.load_snapshot($1, $2, $3)', [streamId('47'), SNAPSHOT_TYPE, SNAPSHOT_VERSION]);
        assert.deepEqual(snap.rows, [{ stream_version: '5', state: { sku: '47', name: 'Snap widget', count: 46, exists: true } }]);

        const item = await repo.load('47');
        assert.equal(item.count, 44);
        assert.equal(item.version, 7);

        // The load really starts from the snapshot: a (deliberately wrong) newer one shows through,
        // while a repository without snapshots replays every event.
        await admin.query('SELECT annals.save_snapshot($1, $2, $3, 7, $4::jsonb)', [
            streamId('47'), SNAPSHOT_TYPE, SNAPSHOT_VERSION, JSON.stringify({ sku: '47', name: 'Snap widget', count: 999, exists: true }),
        ]);
        assert.equal((await repo.load('47')).count, 999);
        assert.equal((await new InventoryRepository(pool, { snapshotEvery: 0 }).load('47')).count, 44);
    });

    it('loads a stream longer than one page', async () => {
        const batch = Array.from({ length: 1100 }, (_, i) => (i === 0 ? { type: 'ItemAdded', data: { sku: '48', name: 'Long', count: 0 } } : { type: 'ItemAdjusted', data: { delta: 1, reason: 'delivery' } }));
        await pool.query('SELECT * FROM annals.append_events($1, 0, $2::jsonb)', [streamId('48'), JSON.stringify(batch)]);
        const item = await new InventoryRepository(pool, { snapshotEvery: 0 }).load('48');
        assert.equal(item.version, 1100);
        assert.equal(item.count, 1099);
        assert.ok(item instanceof InventoryItem);
    });
});

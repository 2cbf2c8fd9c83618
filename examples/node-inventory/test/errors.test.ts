// Every SQLSTATE the mapping knows, provoked against a real database, with its DETAIL parsed.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DatabaseError, Pool } from 'pg';
import {
    AnnalsError,
    AppendOnlyError,
    EventIdConflictError,
    InvalidArgumentError,
    mapError,
    NotFoundError,
    PermissionDeniedError,
    ProjectionError,
    ReservedNameError,
    RetryTransactionError,
    StreamDeletedError,
    TooLargeError,
    WrongExpectedVersionError,
} from '../src/errors';
import { MAX_COUNT } from '../src/inventory';
import { appPool, createScratchDb, type ScratchDb } from './db';

let db: ScratchDb;
let pool: Pool; // the service's login
let admin: Pool; // a superuser

before(async () => {
    db = await createScratchDb();
    pool = appPool(db);
    admin = new Pool({ connectionString: db.adminUrl, max: 2 });
});

after(async () => {
    await pool?.end();
    await admin?.end();
    await db?.drop();
});

// Runs a statement that must fail and returns its mapped error.
async function failure(p: Pool, text: string, values: unknown[] = []): Promise<unknown> {
    try {
        await p.query(text, values);
    } catch (err) {
        return mapError(err);
    }
    assert.fail(`no error from ${text}`);
}

const appendOne = 'SELECT * FROM annals.append_events($1, $2, $3::jsonb)';

describe('mapError', () => {
    it('ST409: the DETAIL gives the stream, the expected and the actual version as numbers', async () => {
        await pool.query(appendOne, ['order-1', 0, JSON.stringify([{ type: 'Placed', data: {} }, { type: 'Paid', data: {} }])]);
        const err = await failure(pool, appendOne, ['order-1', 1, JSON.stringify([{ type: 'Shipped', data: {} }])]);
        assert.ok(err instanceof WrongExpectedVersionError);
        assert.ok(err instanceof AnnalsError && err instanceof Error);
        assert.equal(err.name, 'WrongExpectedVersionError');
        assert.equal(err.code, 'ST409');
        assert.equal(err.streamId, 'order-1');
        assert.equal(err.expected, 1);
        assert.equal(err.actual, 2);
        assert.deepEqual(err.detail, { stream_id: 'order-1', expected: 1, actual: 2 });
        assert.match(err.message, /expected 1, actual 2/);
        assert.match(err.hint ?? '', /load the stream again/);
        assert.ok(err.cause instanceof DatabaseError);

        // -1: the stream must exist.
        const missing = await failure(pool, appendOne, ['order-2', -1, JSON.stringify([{ type: 'Shipped', data: {} }])]);
        assert.ok(missing instanceof WrongExpectedVersionError);
        assert.deepEqual([missing.expected, missing.actual], [-1, 0]);
    });

    it('ST412: an event id reused with other content', async () => {
        const id = randomUUID();
        await pool.query(appendOne, ['order-3', 0, JSON.stringify([{ id, type: 'Placed', data: { total: 1 } }])]);
        const err = await failure(pool, appendOne, ['order-3', null, JSON.stringify([{ id, type: 'Placed', data: { total: 2 } }])]);
        assert.ok(err instanceof EventIdConflictError);
        assert.deepEqual([err.code, err.streamId, err.eventId], ['ST412', 'order-3', id]);
    });

    it('ST410: an append to a deleted stream', async () => {
        await pool.query(appendOne, ['order-4', 0, JSON.stringify([{ type: 'Placed', data: {} }])]);
        await pool.query('SELECT annals.delete_stream($1)', ['order-4']);
        const err = await failure(pool, appendOne, ['order-4', null, JSON.stringify([{ type: 'Paid', data: {} }])]);
        assert.ok(err instanceof StreamDeletedError);
        assert.deepEqual([err.code, err.streamId], ['ST410', 'order-4']);
    });

    it('ST422 and ST403: invalid and reserved arguments, named', async () => {
        const invalid = await failure(pool, appendOne, ['order-5', -2, JSON.stringify([{ type: 'Placed', data: {} }])]);
        assert.ok(invalid instanceof InvalidArgumentError);
        assert.equal(invalid.code, 'ST422');
        assert.equal(invalid.argument, 'expected_version');
        assert.notEqual(invalid.reason, '');

        const shape = await failure(pool, appendOne, ['order-5', null, JSON.stringify([{ type: 'Placed', data: [] }])]);
        assert.ok(shape instanceof InvalidArgumentError);
        assert.equal(shape.argument, 'events[0].data');

        const reserved = await failure(pool, appendOne, ['$all', null, JSON.stringify([{ type: 'X', data: {} }])]);
        assert.ok(reserved instanceof ReservedNameError);
        assert.deepEqual([reserved.code, reserved.argument], ['ST403', 'stream_id']);
    });

    it('ST413: an event over the size limit', async () => {
        const before = await admin.query('SELECT annals.configure() AS settings');
        await admin.query('SELECT annals.configure(max_event_bytes => 1024)');
        try {
            const err = await failure(pool, appendOne, ['order-6', null, JSON.stringify([{ type: 'Placed', data: { note: 'x'.repeat(2000) } }])]);
            assert.ok(err instanceof TooLargeError);
            assert.equal(err.code, 'ST413');
            assert.equal(err.setting, 'max_event_bytes');
            assert.equal(err.limit, 1024);
            assert.ok(err.actual > 1024);
        } finally {
            await admin.query('SELECT annals.configure(max_event_bytes => $1)', [before.rows[0].settings.max_event_bytes]);
        }
    });

    it('ST405, ST404 and 42501: history is append-only, unknown projections, no table privileges', async () => {
        await pool.query(appendOne, ['order-8', 0, JSON.stringify([{ type: 'Placed', data: {} }])]);
        const update = await failure(admin, "UPDATE annals_internal.events SET data = '{}' WHERE stream_id = 'order-8'");
        assert.ok(update instanceof AppendOnlyError, String(update));
        assert.equal(update.code, 'ST405');

        const unknown = await failure(admin, 'SELECT annals.drop_projection($1)', ['no_such_projection']);
        assert.ok(unknown instanceof NotFoundError);
        assert.deepEqual(unknown.detail, { projection: 'no_such_projection' });

        const denied = await failure(pool, 'SELECT count(*) FROM annals_internal.events');
        assert.ok(denied instanceof PermissionDeniedError);
        assert.equal(denied.code, '42501');
    });

    it('40001: an append in a transaction older than the stream\'s last appender', async () => {
        await pool.query(appendOne, ['order-7', 0, JSON.stringify([{ type: 'Placed', data: {} }])]);
        const older = await pool.connect();
        try {
            await older.query('BEGIN');
            await older.query('SELECT pg_current_xact_id()'); // this transaction has its id now
            await pool.query(appendOne, ['order-7', null, JSON.stringify([{ type: 'Paid', data: {} }])]); // a younger one appends
            let err: unknown;
            try {
                await older.query(appendOne, ['order-7', null, JSON.stringify([{ type: 'Shipped', data: {} }])]);
            } catch (e) {
                err = mapError(e);
            }
            assert.ok(err instanceof RetryTransactionError, String(err));
            assert.equal(err.code, '40001');
            assert.equal(err.detail.stream_id, 'order-7');
            assert.equal(typeof err.detail.transaction_id, 'string');
        } finally {
            await older.query('ROLLBACK');
            older.release();
        }
    });

    it('a failing inline projection names itself, and the append writes nothing', async () => {
        await pool.query(appendOne, ['inventory-900', 0, JSON.stringify([{ type: 'ItemAdded', data: { sku: '900', name: 'Full', count: MAX_COUNT } }])]);
        // Past the domain's rules, straight through SQL: the read model's integer overflows.
        const err = await failure(pool, appendOne, ['inventory-900', 1, JSON.stringify([{ type: 'ItemAdjusted', data: { delta: 1, reason: 'one too many' } }])]);
        assert.ok(err instanceof ProjectionError, String(err));
        assert.equal(err.projection, 'inventory_item_counts');
        assert.equal(err.code, '22003'); // the handler's own SQLSTATE: integer out of range
        assert.match(err.message, /^inline projection "inventory_item_counts" failed: .*out of range/);
        const version = await pool.query('SELECT stream_version FROM annals.stream_info($1)', ['inventory-900']);
        assert.equal(version.rows[0].stream_version, '1');
    });

    it('leaves other errors as they are', async () => {
        const syntax = await failure(pool, 'SELEC 1');
        assert.ok(syntax instanceof DatabaseError && !(syntax instanceof AnnalsError));
        assert.equal((syntax as DatabaseError).code, '42601');
        const plain = new Error('not from the database');
        assert.equal(mapError(plain), plain);
        assert.equal(mapError(undefined), undefined);
    });
});

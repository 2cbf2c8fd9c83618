// The guide's repository, over Annals' SQL API: it loads an item from its latest snapshot and
// the events after it (annals.load_snapshot, annals.read_stream), and saves its pending events
// with one call that checks the expected version and appends atomically (annals.append_event /
// annals.append_events), where the guide ran SELECT MAX(version) and an INSERT. The inline
// projection inventory.item_counts is updated by that same call, in the same transaction.
import type { Pool, PoolClient } from 'pg';
import { int8 } from './int8';
import { mapError, WrongExpectedVersionError } from './errors';
import { InventoryItem, ItemNotFoundError, streamId, type InventoryEvent, type ItemState, type PendingEvent } from './inventory';

/** What an append returns: the stream's version and the global position of its last event, and the appending transaction's id (xid8, as a string). */
export interface AppendResult {
    streamVersion: number;
    globalPosition: number;
    transactionId: string;
}

/** A row of the inline projection inventory.item_counts. */
export interface ItemCount {
    sku: string;
    name: string;
    count: number;
    version: number;
    updatedAt: Date;
}

export interface RepositoryOptions {
    /** Write a snapshot after a commit that leaves the stream this many events or more past the last one (default 100; 0 turns snapshots off). */
    snapshotEvery?: number;
    /** How many appends a command sends at most when other writers keep appending first (default 10). */
    maxAttempts?: number;
    /** Called before each retry after a conflict (ST409), for logs and metrics. */
    onConflict?: (err: WrongExpectedVersionError, attempt: number) => void;
    /** Receives a failed snapshot write, which never fails a command (default: console.warn). */
    onSnapshotError?: (err: unknown) => void;
}

/** The snapshot type and state schema version the Go example uses too, so either service reads the other's snapshots. */
export const SNAPSHOT_TYPE = 'inventory-item';
export const SNAPSHOT_VERSION = 1;
const PAGE = 1000;

type Queryable = Pick<Pool, 'query'> | Pick<PoolClient, 'query'>;

export class InventoryRepository {
    private readonly snapshotEvery: number;
    private readonly maxAttempts: number;
    private readonly onSnapshotError: (err: unknown) => void;
    private readonly onConflict: (err: WrongExpectedVersionError, attempt: number) => void;
    // The version of the latest snapshot written or loaded per item, to know when the next is due.
    private readonly snapshotVersions = new WeakMap<InventoryItem, number>();

    constructor(
        private readonly pool: Pool,
        options: RepositoryOptions = {},
    ) {
        this.snapshotEvery = options.snapshotEvery ?? 100;
        this.maxAttempts = options.maxAttempts ?? 10;
        this.onConflict = options.onConflict ?? (() => undefined);
        this.onSnapshotError = options.onSnapshotError ?? ((err) => console.warn('inventory: snapshot not saved:', err));
    }

    /** Loads an item: its latest snapshot, then the events after it, a page at a time. An item never added comes back with `exists` false and version 0. */
    async load(sku: string, db: Queryable = this.pool): Promise<InventoryItem> {
        const stream = streamId(sku);
        let from: { state: ItemState; version: number } | undefined;
        if (this.snapshotEvery > 0) {
            const snap = await query(db, 'SELECT stream_version, state FROM annals.load_snapshot($1, $2, $3)', [stream, SNAPSHOT_TYPE, SNAPSHOT_VERSION]);
            const row = snap.rows[0];
            if (row !== undefined) {
                // jsonb arrives parsed: node-postgres turns it into an object (no JSON.parse here).
                from = { state: row.state as ItemState, version: int8(row.stream_version, 'stream_version') };
            }
        }
        const events: InventoryEvent[] = [];
        let next = (from?.version ?? 0) + 1;
        for (;;) {
            const page = await query(db, 'SELECT stream_version, event_type, data FROM annals.read_stream($1, $2, $3)', [stream, next, PAGE]);
            for (const row of page.rows) {
                events.push({ type: row.event_type, data: row.data } as InventoryEvent);
                next = int8(row.stream_version, 'stream_version') + 1;
            }
            if (page.rows.length < PAGE) break;
        }
        const item = InventoryItem.fromHistory(events, from);
        if (from !== undefined) this.snapshotVersions.set(item, from.version);
        if (item.version !== next - 1) {
            throw new Error(`${stream}: events from ${(from?.version ?? 0) + 1} to ${next - 1} make version ${item.version}`);
        }
        return item;
    }

    /**
     * Appends the item's pending events, expecting the stream at the version the item was loaded
     * at, in a transaction of its own. `inTransaction`, when given, runs in that transaction
     * after the append, so the caller's own writes commit with the events or not at all (and can
     * read the inline projection, already updated). The pending events are cleared only once
     * COMMIT succeeded; on any error they stay, and the error is typed (mapError): a
     * WrongExpectedVersionError when another writer appended first.
     */
    async save(item: InventoryItem, inTransaction?: (client: PoolClient) => Promise<void>): Promise<AppendResult | undefined> {
        const pending = item.pendingEvents;
        if (pending.length === 0) return undefined;
        const client = await this.pool.connect();
        let result: AppendResult;
        let broken: Error | undefined; // a connection that failed to roll back is not reused
        try {
            await client.query('BEGIN');
            result = await append(client, streamId(item.sku), item.version, pending);
            if (inTransaction !== undefined) await inTransaction(client);
            await client.query('COMMIT');
        } catch (err) {
            await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
            throw mapError(err);
        } finally {
            client.release(broken);
        }
        item.markCommitted(result.streamVersion);
        await this.maybeSnapshot(item);
        return result;
    }

    /**
     * Runs a command against the latest state: load, decide (the callback calls the item's
     * commands), save; when another writer appended first (ST409), load again and decide again,
     * up to maxAttempts appends. The rules' errors come back as they are, nothing appended.
     */
    async handle(sku: string, decide: (item: InventoryItem) => void): Promise<InventoryItem> {
        for (let attempt = 1; ; attempt++) {
            const item = await this.load(sku);
            decide(item);
            try {
                await this.save(item);
                return item;
            } catch (err) {
                if (!(err instanceof WrongExpectedVersionError) || attempt >= this.maxAttempts) throw err;
                this.onConflict(err, attempt);
            }
        }
    }

    /** Adds an item (the guide's create). */
    addItem(sku: string, name: string, count: number): Promise<InventoryItem> {
        return this.handle(sku, (item) => item.add(sku, name, count));
    }

    /** Changes an item's count by delta (the guide's adjustInventory). */
    adjustCount(sku: string, delta: number, reason: string): Promise<InventoryItem> {
        return this.handle(sku, (item) => {
            if (!item.exists) throw new ItemNotFoundError(`item not found: ${sku}`);
            item.adjust(delta, reason);
        });
    }

    /** An item's row in the inline projection inventory.item_counts (current as of every committed append), or undefined. */
    async itemCount(sku: string, db: Queryable = this.pool): Promise<ItemCount | undefined> {
        const res = await query(db, 'SELECT sku, name, count, version, updated_at FROM inventory.item_counts WHERE sku = $1', [sku]);
        const row = res.rows[0];
        return row === undefined
            ? undefined
            : { sku: row.sku, name: row.name, count: row.count, version: int8(row.version, 'version'), updatedAt: row.updated_at };
    }

    // A snapshot once the item is snapshotEvery events past the last one. After the commit, so a
    // failure costs only a longer load next time.
    private async maybeSnapshot(item: InventoryItem): Promise<void> {
        if (this.snapshotEvery <= 0 || item.version - (this.snapshotVersions.get(item) ?? 0) < this.snapshotEvery) return;
        try {
            await query(this.pool, 'SELECT annals.save_snapshot($1, $2, $3, $4, $5::jsonb)', [
                streamId(item.sku), SNAPSHOT_TYPE, SNAPSHOT_VERSION, item.version, JSON.stringify(item.snapshot()),
            ]);
            this.snapshotVersions.set(item, item.version);
        } catch (err) {
            this.onSnapshotError(err);
        }
    }
}

// One event: annals.append_event with named arguments; more: annals.append_events with a JSON
// array. Either checks the expected version, appends, and runs the inline projections, in one
// statement. The events' ids were fixed when they were decided, so sending the same pending
// events again after a lost reply is a replay, not a duplicate.
async function append(db: Queryable, stream: string, expected: number, events: readonly PendingEvent[]): Promise<AppendResult> {
    const res =
        events.length === 1
            ? await db.query(
                  `SELECT stream_version, global_position, transaction_id
                     FROM annals.append_event(stream_id => $1, expected_version => $2, event_type => $3, data => $4::jsonb, event_id => $5)`,
                  // pg would send a JS object as JSON anyway, but an array as a PostgreSQL array:
                  // stringify JSON explicitly.
                  [stream, expected, events[0]!.type, JSON.stringify(events[0]!.data), events[0]!.id],
              )
            : await db.query('SELECT stream_version, global_position, transaction_id FROM annals.append_events($1, $2, $3::jsonb)', [
                  stream, expected, JSON.stringify(events.map((e) => ({ id: e.id, type: e.type, data: e.data }))),
              ]);
    const row = res.rows[0];
    return {
        streamVersion: int8(row.stream_version, 'stream_version'),
        globalPosition: int8(row.global_position, 'global_position'),
        transactionId: String(row.transaction_id),
    };
}

async function query(db: Queryable, text: string, values: unknown[]) {
    try {
        return await db.query(text, values);
    } catch (err) {
        throw mapError(err);
    }
}

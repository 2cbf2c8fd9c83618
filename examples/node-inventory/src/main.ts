// The guide's story against a database set up with cmd/setup-db: `npm start` with DATABASE_URL
// set. Prints what happens at each step; exits 1 on an unexpected error.
import { Pool } from 'pg';
import { mapError, WrongExpectedVersionError } from './errors';
import { InsufficientInventoryError, streamId } from './inventory';
import { InventoryRepository } from './repository';

async function story(pool: Pool, out: (line: string) => void): Promise<void> {
    const repo = new InventoryRepository(pool, { maxAttempts: 20 });
    const sku = '42';

    let item = await repo.addItem(sku, 'Blue widget', 10);
    out(`added ${sku} (${item.name}), ${item.count} in stock: version ${item.version}`);

    item = await repo.adjustCount(sku, -3, 'sale');
    out(`sold 3: ${item.count} in stock, version ${item.version}`);

    try {
        await repo.adjustCount(sku, -20, 'sale');
    } catch (err) {
        if (!(err instanceof InsufficientInventoryError)) throw err;
        out(`selling 20 refused: ${err.message}; nothing appended`);
    }

    // A writer that decided on version 1, after the sale made it 2.
    const stale = await pool.connect();
    try {
        await stale.query('SELECT * FROM annals.append_event($1, 1, $2, $3::jsonb)', [streamId(sku), 'ItemAdjusted', JSON.stringify({ delta: -1, reason: 'sale' })]);
    } catch (err) {
        const mapped = mapError(err);
        if (!(mapped instanceof WrongExpectedVersionError)) throw mapped;
        out(`a stale writer expecting version ${mapped.expected}: ${mapped.code}, the stream is at ${mapped.actual}`);
    } finally {
        stale.release();
    }

    await Promise.all(Array.from({ length: 20 }, () => repo.adjustCount(sku, 1, 'delivery')));
    item = await repo.load(sku);
    out(`20 writers delivered 1 each at once, retrying on ST409: ${item.count} in stock, version ${item.version}`);

    const row = await repo.itemCount(sku);
    out(`inventory.item_counts (inline projection): ${row?.sku} ${row?.name} ${row?.count} version ${row?.version}`);
}

async function main(): Promise<number> {
    const url = process.env.DATABASE_URL;
    if (url === undefined || url === '') {
        console.error('node-inventory: set DATABASE_URL to a database set up with `go run ./examples/node-inventory/cmd/setup-db`');
        return 2;
    }
    const pool = new Pool({ connectionString: url, max: 20 });
    try {
        await story(pool, (line) => console.log(line));
        return 0;
    } catch (err) {
        console.error('node-inventory:', err instanceof Error ? err.message : err);
        return 1;
    } finally {
        await pool.end();
    }
}

void main().then((code) => {
    process.exitCode = code;
});

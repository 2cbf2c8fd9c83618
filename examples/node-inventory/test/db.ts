// Test databases: each test file gets a scratch database beside TEST_DATABASE_URL's (default: the
// local server as postgres, like the Go tests), with Annals and the Go example's read models
// installed by the project's own Go code (cmd/setup-db: annals.Migrate and readmodels.Install),
// and a login of its own that is a member of annals_writer and annals_bi only, as a service's
// would be. Both are dropped at the end. Nothing here skips: without a database the tests fail.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Pool } from 'pg';

const run = promisify(execFile);
const repoRoot = path.resolve(__dirname, '../../../..'); // dist/test -> examples/node-inventory -> root

export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable';

export interface ScratchDb {
    /** A superuser's URL of the scratch database, for setup and for looking behind the API. */
    adminUrl: string;
    /** The service login's URL: member of annals_writer and annals_bi, no table privileges. */
    appUrl: string;
    /** Drops the database and the login. */
    drop(): Promise<void>;
}

function withDatabase(url: string, database: string, user?: string): string {
    const u = new URL(url);
    u.pathname = '/' + database;
    if (user !== undefined) {
        u.username = user;
        u.password = '';
    }
    return u.toString();
}

async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ connectionString: adminUrl });
    await c.connect();
    try {
        return await fn(c);
    } finally {
        await c.end();
    }
}

export async function createScratchDb(): Promise<ScratchDb> {
    const name = 'annals_node_' + randomBytes(5).toString('hex');
    await admin((c) => c.query(`CREATE DATABASE ${name}`));
    const url = withDatabase(adminUrl, name);
    const drop = async () => {
        await admin(async (c) => {
            // Not WITH (FORCE): a pool's end() resolves while its connections are still
            // closing, and PostgreSQL waits (up to 5 s) for them; a connection the tests leaked
            // fails the drop, as it should.
            await c.query(`DROP DATABASE IF EXISTS ${name}`);
            await c.query(`DROP ROLE IF EXISTS ${name}`);
        });
    };
    try {
        await run(process.env.GO || 'go', ['run', './examples/node-inventory/cmd/setup-db', '--database-url', url], { cwd: repoRoot, timeout: 300_000 });
        await admin((c) => c.query(`CREATE ROLE ${name} LOGIN IN ROLE annals_writer, annals_bi`));
    } catch (err) {
        await drop();
        throw err;
    }
    return { adminUrl: url, appUrl: withDatabase(adminUrl, name, name), drop };
}

/** A pool as the service login, closed by the caller. */
export function appPool(db: ScratchDb, max = 10): Pool {
    return new Pool({ connectionString: db.appUrl, max });
}

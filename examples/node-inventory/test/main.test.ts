// `npm start` on a fresh database prints what README.md shows.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { promisify } from 'node:util';
import { createScratchDb, type ScratchDb } from './db';

const run = promisify(execFile);
const packageDir = path.resolve(__dirname, '../..');
let db: ScratchDb;

before(async () => {
    db = await createScratchDb();
});

after(async () => {
    await db?.drop();
});

it('plays the story README.md shows, as the service login', async () => {
    const { stdout } = await run(process.execPath, [path.join(packageDir, 'dist/src/main.js')], {
        env: { ...process.env, DATABASE_URL: db.appUrl },
        timeout: 60_000,
    });
    const readme = readFileSync(path.join(packageDir, 'README.md'), 'utf8');
    const shown = /<!-- output of npm start -->\n```text\n([\s\S]*?)```/.exec(readme);
    assert.ok(shown?.[1] !== undefined, 'README.md has no "<!-- output of npm start -->" block');
    assert.equal(stdout, shown[1]);
});

// The guide's own test cases, on the aggregate alone: no database.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
    InsufficientInventoryError,
    InvalidCommandError,
    InventoryItem,
    ItemExistsError,
    ItemNotFoundError,
    MAX_COUNT,
    type InventoryEvent,
} from '../src/inventory';
import { int8 } from '../src/int8';

describe('InventoryItem', () => {
    it('rejects an adjustment that would make the inventory negative, recording nothing', () => {
        const item = InventoryItem.fromHistory([{ type: 'ItemAdded', data: { sku: '42', name: 'Blue widget', count: 10 } }]);
        assert.throws(
            () => item.adjust(-11, 'sale'),
            (err: unknown) => err instanceof InsufficientInventoryError && err.available === 10 && err.requested === 11 && err.sku === '42',
        );
        assert.equal(item.count, 10);
        assert.deepEqual(item.pendingEvents, []);
        item.adjust(-10, 'sale'); // down to exactly zero is allowed
        assert.equal(item.count, 0);
    });

    it('rebuilds its state from its events', () => {
        const history: InventoryEvent[] = [
            { type: 'ItemAdded', data: { sku: '42', name: 'Blue widget', count: 10 } },
            { type: 'ItemAdjusted', data: { delta: -3, reason: 'sale' } },
            { type: 'ItemAdjusted', data: { delta: 5, reason: 'delivery' } },
        ];
        const item = InventoryItem.fromHistory(history);
        assert.deepEqual(item.snapshot(), { sku: '42', name: 'Blue widget', count: 12, exists: true });
        assert.equal(item.version, 3);
        assert.deepEqual(item.pendingEvents, []);

        // From a snapshot at version 2 plus the event after it: the same state.
        const fromSnapshot = InventoryItem.fromHistory(history.slice(2), { state: { sku: '42', name: 'Blue widget', count: 7, exists: true }, version: 2 });
        assert.deepEqual(fromSnapshot.snapshot(), item.snapshot());
        assert.equal(fromSnapshot.version, 3);
    });

    it('records decided events as pending, with ids, until they are marked committed', () => {
        const item = InventoryItem.fromHistory([]);
        item.add('7', 'Red gear', 4);
        item.adjust(2, 'delivery');
        assert.equal(item.version, 0);
        assert.deepEqual(
            item.pendingEvents.map((e) => e.type),
            ['ItemAdded', 'ItemAdjusted'],
        );
        assert.match(item.pendingEvents[0]!.id, /^[0-9a-f-]{36}$/);
        assert.notEqual(item.pendingEvents[0]!.id, item.pendingEvents[1]!.id);
        assert.throws(() => item.markCommitted(1), /2 pending events on version 0/);
        item.markCommitted(2);
        assert.equal(item.version, 2);
        assert.deepEqual(item.pendingEvents, []);
        assert.equal(item.count, 6);
    });

    it('refuses invalid commands', () => {
        const empty = InventoryItem.fromHistory([]);
        assert.throws(() => empty.adjust(1, 'delivery'), ItemNotFoundError);
        assert.throws(() => empty.add('', 'x', 1), InvalidCommandError);
        assert.throws(() => empty.add('1', '', 1), InvalidCommandError);
        assert.throws(() => empty.add('1', 'x', -1), InvalidCommandError);
        assert.throws(() => empty.add('1', 'x', 1.5), InvalidCommandError);
        assert.throws(() => empty.add('1', 'x', MAX_COUNT + 1), InvalidCommandError);
        const item = InventoryItem.fromHistory([{ type: 'ItemAdded', data: { sku: '1', name: 'x', count: MAX_COUNT } }]);
        assert.throws(() => item.add('1', 'x', 1), ItemExistsError);
        assert.throws(() => item.adjust(0, 'nothing'), InvalidCommandError);
        assert.throws(() => item.adjust(1, 'over the top'), InvalidCommandError);
        assert.deepEqual(item.pendingEvents, []);
    });
});

describe('int8', () => {
    it('reads bigints exactly or not at all', () => {
        assert.equal(int8('21', 'v'), 21);
        assert.equal(int8(21, 'v'), 21);
        assert.equal(int8('-1', 'v'), -1);
        assert.equal(int8('9007199254740991', 'v'), Number.MAX_SAFE_INTEGER);
        assert.throws(() => int8('9007199254740993', 'v'), RangeError); // would round to ...992
        assert.throws(() => int8('9223372036854775807', 'v'), /beyond Number.MAX_SAFE_INTEGER/);
        assert.throws(() => int8(1.5, 'v'), RangeError);
        assert.throws(() => int8('1e3', 'v'), RangeError);
        assert.throws(() => int8(null, 'v'), RangeError);
    });
});

// The guide's InventoryItem aggregate: commands check the rules against the current state and
// record new events as pending; the state is only ever changed by applying events, so the same
// code rebuilds it from history. The events and rules are those of the Go example
// (internal/inventory), so both services share streams, snapshots and the read model.
import { randomUUID } from 'node:crypto';

/** The largest count an item may hold: the read model stores counts as PostgreSQL integer. */
export const MAX_COUNT = 2147483647;

/** Stored event type names: part of the data, never renamed. */
export type ItemAdded = { type: 'ItemAdded'; data: { sku: string; name: string; count: number } };
export type ItemAdjusted = { type: 'ItemAdjusted'; data: { delta: number; reason: string } };
export type InventoryEvent = ItemAdded | ItemAdjusted;

/** An event not yet stored, with the id it will be stored under, fixed when it was decided. */
export type PendingEvent = InventoryEvent & { id: string };

/** The item's state. Its JSON is the snapshot's state, the same shape as the Go example's (inventory.Item). */
export interface ItemState {
    sku: string;
    name: string;
    count: number;
    exists: boolean;
}

/** The stream of the item with this SKU. */
export function streamId(sku: string): string {
    return `inventory-${sku}`;
}

/** The base of the rules' errors: nothing was appended. */
export class InventoryError extends Error {
    constructor(message: string) {
        super(message);
        this.name = new.target.name;
    }
}

/** An adjustment would take the count below zero. */
export class InsufficientInventoryError extends InventoryError {
    constructor(
        readonly sku: string,
        readonly available: number,
        readonly requested: number,
    ) {
        super(`insufficient inventory for ${sku}: ${requested} requested, ${available} available`);
    }
}

/** Adding an item that was already added. */
export class ItemExistsError extends InventoryError {}

/** A command for an item that was never added. */
export class ItemNotFoundError extends InventoryError {}

/** A command with an empty SKU or name, a count or delta out of range. */
export class InvalidCommandError extends InventoryError {}

export class InventoryItem {
    private state: ItemState = { sku: '', name: '', count: 0, exists: false };
    private pending: PendingEvent[] = [];
    private storedVersion = 0;

    /** An item rebuilt from its history: the events of its stream, in order, from version 1 (or from a snapshot's version + 1 on top of `from`). */
    static fromHistory(events: Iterable<InventoryEvent>, from?: { state: ItemState; version: number }): InventoryItem {
        const item = new InventoryItem();
        if (from !== undefined) {
            item.state = { ...from.state };
            item.storedVersion = from.version;
        }
        for (const event of events) {
            item.apply(event);
            item.storedVersion++;
        }
        return item;
    }

    get sku(): string {
        return this.state.sku;
    }
    get name(): string {
        return this.state.name;
    }
    get count(): number {
        return this.state.count;
    }
    get exists(): boolean {
        return this.state.exists;
    }
    /** The stream version of the stored events this item reflects: the expected version of its next append. */
    get version(): number {
        return this.storedVersion;
    }
    /** The events decided but not yet committed. */
    get pendingEvents(): readonly PendingEvent[] {
        return this.pending;
    }
    /** A copy of the state, for a snapshot. Pending events are part of it: snapshot after committing them. */
    snapshot(): ItemState {
        return { ...this.state };
    }

    /** Adds the item with a name and an initial count (0 to MAX_COUNT). */
    add(sku: string, name: string, count: number): void {
        if (sku === '') throw new InvalidCommandError('empty SKU');
        if (name === '') throw new InvalidCommandError('empty name');
        if (!Number.isInteger(count) || count < 0 || count > MAX_COUNT) {
            throw new InvalidCommandError(`initial count ${count} is not an integer from 0 to ${MAX_COUNT}`);
        }
        if (this.state.exists) throw new ItemExistsError(`item already exists: ${sku}`);
        this.record({ type: 'ItemAdded', data: { sku, name, count } });
    }

    /** Changes the count by delta (deliveries positive, sales negative); never below zero or above MAX_COUNT. */
    adjust(delta: number, reason: string): void {
        if (!Number.isInteger(delta) || delta === 0 || Math.abs(delta) > MAX_COUNT) {
            throw new InvalidCommandError(`delta ${delta} is not a non-zero integer within ±${MAX_COUNT}`);
        }
        if (!this.state.exists) throw new ItemNotFoundError('item not found');
        if (this.state.count + delta < 0) {
            throw new InsufficientInventoryError(this.state.sku, this.state.count, -delta);
        }
        if (this.state.count + delta > MAX_COUNT) {
            throw new InvalidCommandError(`count ${this.state.count}${delta >= 0 ? '+' : ''}${delta} would be over ${MAX_COUNT}`);
        }
        this.record({ type: 'ItemAdjusted', data: { delta, reason } });
    }

    /**
     * Marks the pending events as stored at versions up to `version`. Call it only after the
     * transaction that appended them committed: until then they may still be rolled back, and an
     * item that forgot them would decide its next command on a state nobody stored.
     */
    markCommitted(version: number): void {
        if (version !== this.storedVersion + this.pending.length) {
            throw new Error(`markCommitted(${version}): ${this.pending.length} pending events on version ${this.storedVersion}`);
        }
        this.pending = [];
        this.storedVersion = version;
    }

    private record(event: InventoryEvent): void {
        this.apply(event);
        this.pending.push({ ...event, id: randomUUID() });
    }

    private apply(event: InventoryEvent): void {
        switch (event.type) {
            case 'ItemAdded':
                this.state = { sku: event.data.sku, name: event.data.name, count: event.data.count, exists: true };
                break;
            case 'ItemAdjusted':
                this.state = { ...this.state, count: this.state.count + event.data.delta };
                break;
        }
    }
}

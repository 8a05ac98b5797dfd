-- A journal as drainctl wrote it up to commit c5cf409 (schema version 1), for the migration tests.
-- The DDL is exactly what that code generated (controller/journal/sqlite.py, `_SCHEMA`): the drains columns
-- untyped, named after the Drain fields in their order. The rows are what that code wrote for instance A
-- (120 sockets, a server that ignores drains) 2 s after its notice: the drain was requested and accepted,
-- the first count journaled, the drain unfinished in `verifying`. Keep this file as it is: it is history.
CREATE TABLE IF NOT EXISTS drains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance, pool, source, kind, event_id, not_after, rate_per_s, drain_deadline_s, needs_release, refs, phase, phase_since, reason, outcome, created_at, updated_at, drain_requested_at, force_at, release_by, release_requested_at, released_at, release_error, sockets_before, sockets_last, sockets_reset, verified_by, last_error
);
CREATE INDEX IF NOT EXISTS drains_by_instance ON drains (instance, id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    not_after REAL NOT NULL,
    source TEXT NOT NULL,
    ref TEXT,
    rate_per_s REAL,
    drain_deadline_s REAL,
    received_at REAL NOT NULL,
    disposition TEXT NOT NULL,
    drain_id INTEGER REFERENCES drains (id)
);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    drain_id INTEGER NOT NULL REFERENCES drains (id),
    instance TEXT NOT NULL,
    at REAL NOT NULL,
    previous TEXT,
    phase TEXT NOT NULL,
    step TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_drain ON transitions (drain_id, seq);
INSERT INTO drains (id, instance, pool, source, kind, event_id, not_after, rate_per_s, drain_deadline_s, needs_release, refs, phase, phase_since, reason, outcome, created_at, updated_at, drain_requested_at, force_at, release_by, release_requested_at, released_at, release_error, sockets_before, sockets_last, sockets_reset, verified_by, last_error) VALUES (1, 'A', 'web', 'local', 'terminate', '5260f86f70babfed583acdc3', 1700000060.0, 500.0, 20.0, 1, '["notice-A-60"]', 'verifying', 1700000000.0, NULL, NULL, 1700000000.0, 1700000000.0, 1700000000.0, 1700000020.0, 1700000055.0, NULL, NULL, NULL, 120, 120, 0, NULL, NULL);
INSERT INTO events (id, instance, kind, not_after, source, ref, rate_per_s, drain_deadline_s, received_at, disposition, drain_id) VALUES ('5260f86f70babfed583acdc3', 'A', 'terminate', 1700000060.0, 'local', 'notice-A-60', NULL, NULL, 1700000000.0, 'started', 1);
INSERT INTO transitions (seq, drain_id, instance, at, previous, phase, step, detail) VALUES (1, 1, 'A', 1700000000.0, NULL, 'pending', 'event accepted', 'terminate from local; platform deadline in 60.0 s');
INSERT INTO transitions (seq, drain_id, instance, at, previous, phase, step, detail) VALUES (2, 1, 'A', 1700000000.0, 'pending', 'draining', 'drain requested', '0/1 of pool web draining, earliest deadline next; rate 500/s; reset at +20.0 s, release by +55.0 s');
INSERT INTO transitions (seq, drain_id, instance, at, previous, phase, step, detail) VALUES (3, 1, 'A', 1700000000.0, 'draining', 'verifying', 'drain accepted', NULL);
INSERT INTO transitions (seq, drain_id, instance, at, previous, phase, step, detail) VALUES (4, 1, 'A', 1700000000.0, 'verifying', 'verifying', 'first count', 'kernel 120, prometheus unknown (no fresh sample)');
PRAGMA user_version = 1;

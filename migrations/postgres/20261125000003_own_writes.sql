-- When the sync last wrote the webCRM record of a link (taken just before the write), so
-- the hook that write causes can be recognised without reading the record again.
alter table links add column webcrm_written_at bigint;

-- The record a webCRM hook named (`Persons/123`), to count the hooks a record received
-- since the sync wrote it.
alter table inbound_events add column subject text;
create index inbound_events_by_subject on inbound_events (source, subject, received_at)
    where subject is not null;

-- The values a sync is about to write (per side, canonical), noted before the write and
-- cleared by its commit: if the process stops in between, the next sync knows those
-- values as its own write rather than someone's edit.
alter table links add column pending_writes text;

-- A record's values when the sync began creating its counterpart (kept from the first
-- attempt until the link is committed), so a counterpart found by a later attempt, made by
-- the first and edited since, is merged against what it was made from.
create table create_bases (
    pairing text not null,
    side text not null,
    source_id text not null,
    fields text not null,
    created_at bigint not null,
    primary key (pairing, side, source_id)
);

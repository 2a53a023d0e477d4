-- The sync engine's commit point compares a link's revision, so two jobs for the two
-- records of one pair cannot overwrite each other's snapshot.
alter table links add column revision bigint not null default 0;

-- A webCRM create about to happen (its marker is written on the new record), so a retry
-- finds the record instead of creating a second one.
create table pending_creates (
    pairing text not null,
    target text not null,
    source_id text not null,
    marker text not null,
    created_at bigint not null,
    primary key (pairing, target, source_id)
);

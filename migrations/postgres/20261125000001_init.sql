-- Instants are unix milliseconds (bigint), written by the service, identical in both backends.

-- Every inbound webhook/hook, accepted or rejected; dedupe on (source, event_id).
create table inbound_events (
    id bigserial primary key,
    source text not null,
    event_id text,
    event_type text,
    outcome text not null,
    detail text,
    body text,
    received_at bigint not null
);
create unique index inbound_events_dedupe on inbound_events (source, event_id)
    where event_id is not null;
create index inbound_events_received on inbound_events (received_at);

create table jobs (
    id bigserial primary key,
    kind text not null,
    pairing text,
    dedupe_key text not null,
    payload text not null default '{}',
    state text not null check (state in ('pending', 'running', 'failed', 'dead')),
    attempts integer not null default 0,
    max_attempts integer not null,
    run_at bigint not null,
    lease_until bigint,
    locked_by text,
    last_error text,
    created_at bigint not null,
    updated_at bigint not null
);
-- A burst of events for one record collapses into one waiting job ...
create unique index jobs_one_waiting_per_key on jobs (dedupe_key)
    where state in ('pending', 'failed');
-- ... and at most one job per record runs at a time.
create unique index jobs_one_running_per_key on jobs (dedupe_key)
    where state = 'running';
create index jobs_due on jobs (run_at, id) where state in ('pending', 'failed');
create index jobs_leases on jobs (lease_until) where state = 'running';
create index jobs_by_state on jobs (state, pairing);
-- The queue table churns: vacuum it eagerly so claims do not walk dead tuples.
alter table jobs set (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

create table pairing_state (
    pairing text primary key,
    paused boolean not null default false,
    updated_at bigint not null
);

create table links (
    id bigserial primary key,
    pairing text not null,
    webcrm_id text not null,
    chargebee_id text not null,
    snapshot text not null default '{}',
    webcrm_version text,
    chargebee_version text,
    created_at bigint not null,
    last_synced_at bigint,
    tombstoned_at bigint,
    constraint links_one_per_webcrm_record unique (pairing, webcrm_id),
    constraint links_one_per_chargebee_record unique (pairing, chargebee_id)
);

create table conflicts (
    id bigserial primary key,
    pairing text not null,
    link_id bigint references links (id) on delete set null,
    webcrm_id text,
    chargebee_id text,
    field text not null,
    webcrm_value text,
    chargebee_value text,
    webcrm_changed_at bigint,
    chargebee_changed_at bigint,
    winner text not null,
    created_at bigint not null,
    resolved_at bigint,
    resolution text
);
create index conflicts_open on conflicts (pairing) where resolved_at is null;

create table pending_actions (
    id bigserial primary key,
    pairing text not null,
    kind text not null,
    subject text not null,
    webcrm_id text,
    chargebee_id text,
    message text not null,
    details text not null default '{}',
    created_at bigint not null,
    updated_at bigint not null,
    closed_at bigint,
    closed_reason text
);
create unique index pending_actions_one_open on pending_actions (pairing, kind, subject)
    where closed_at is null;

create table cursors (
    source text not null,
    entity text not null,
    value text not null,
    updated_at bigint not null,
    primary key (source, entity)
);

create table sync_log (
    id bigserial primary key,
    pairing text not null,
    link_id bigint,
    webcrm_id text,
    chargebee_id text,
    job_id bigint,
    action text not null,
    detail text not null default '{}',
    created_at bigint not null
);
create index sync_log_by_link on sync_log (link_id, id);
create index sync_log_by_webcrm on sync_log (pairing, webcrm_id);
create index sync_log_by_chargebee on sync_log (pairing, chargebee_id);

"""0015: with Redis, the outbox's notification goes out at most once a second.

Every transaction that notifies holds PostgreSQL's one notification lock from its
commit record to the end of its WAL flush, so concurrent commits that write jobs went
one at a time. A process with ``REDIS_URL`` hands its committed jobs to Redis itself
and needs the notification only to wake the relay, which then keeps looking for a
second (see ``arq_jobs``): such a process connects with
``ordergraph.job_notifications = once_a_second``, and its transactions notify only
when no one has in the current second. The embedded runner's processes still notify
on every commit. The sequence remembers the last second notified, outside any
transaction.
"""

SQLITE: list[str] = []

POSTGRES = [
    "CREATE SEQUENCE outbox_notified_second MINVALUE 0 START 0",
    """CREATE OR REPLACE FUNCTION ordergraph_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    this_second BIGINT;
BEGIN
    IF current_setting('ordergraph.job_notifications', true) = 'once_a_second' THEN
        this_second := floor(extract(epoch FROM clock_timestamp()));
        IF (SELECT last_value FROM outbox_notified_second) >= this_second THEN
            RETURN NULL;
        END IF;
        PERFORM setval('outbox_notified_second', this_second);
    END IF;
    PERFORM pg_notify('ordergraph_jobs', '');
    RETURN NULL;
END $$""",
]

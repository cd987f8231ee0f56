"""Every extension point of ordergraph, one hook per function.

This module is the reference for plugin authors; ``docs/plugins.md`` embeds it
(``ordergraph hooks`` prints the reference and a test keeps the two equal).

How hooks are called. The core never calls ``pm.hook.<name>(...)`` itself: it calls
each enabled plugin's implementation through ``PluginManager.call`` (or
``call_sync``), which

* passes only the arguments an implementation names, plus ``settings``, that
  plugin's validated settings (a dict) from ``ordergraph.toml``;
* awaits the result when an implementation is ``async def`` (any hook may be async
  unless it says "sync"), with the configured timeout;
* isolates failures: an implementation that raises or times out is recorded as a
  failure of that plugin and never corrupts an order; what the core does then is
  said under each hook.

Return values are *collected* (every plugin's non-``None`` result, in plugin
order), *first result* (the first non-``None`` result wins; later plugins are not
called), or *veto* (any non-``None`` result stops the action).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("ordergraph")


# -- Every plugin ---------------------------------------------------------------


@hookspec
def plugin_info():
    """Describe this plugin: its category, a one-line description and its settings.

    When: once at start-up, for every installed plugin, enabled or not. Sync.

    Returns: a ``PluginInfo``. Its ``settings`` schema is used to validate the
    plugin's ``[plugins.NAME]`` table of ``ordergraph.toml``; an invalid value stops
    start-up with an error naming the plugin and the field.
    """


@hookspec
def extend_status_graph(graph, settings):
    """Add states and transitions to the status graph.

    When: once at start-up, after the core has declared the default graph and
    before the merged graph is validated. Sync.

    Arguments:
        graph: the ``StatusGraph``; call ``graph.add_state(name, description)``,
            ``graph.add_transition(name, sources, target, roles, description)`` or
            ``graph.extend_transition(name, sources=..., roles=...)``.
        settings: this plugin's settings.

    Returns: nothing. A graph left inconsistent (an unknown state, an unreachable
    state) stops start-up with every problem listed.
    """


@hookspec
def graphql_schema(settings):
    """Contribute GraphQL fields to the one schema.

    When: once at start-up, when the schema is assembled. Sync.

    Arguments:
        settings: this plugin's settings.

    Returns: a ``SchemaExtension`` naming strawberry types whose fields are merged
    into ``Query``, ``Mutation`` and ``Subscription``. A field name that another
    plugin or the core already defines stops start-up; a field or argument without
    a description is named in a warning (collected).
    """


@hookspec
def http_routes(settings):
    """Mount HTTP endpoints: webhooks, file uploads, callbacks.

    When: once at start-up, when the ASGI app is built. Sync.

    Arguments:
        settings: this plugin's settings.

    Returns: a list of starlette ``Route`` objects; paths should start with
    ``/channels/<plugin>/`` or ``/plugins/<plugin>/`` (collected).
    """


@hookspec
def register_jobs(runtime, settings):
    """Name background jobs this plugin can enqueue with ``enqueue_job``.

    When: once at start-up, in the API process and in ``ordergraph worker``. Sync.

    Arguments:
        runtime: the service's ``Runtime`` (settings, plugins, status graph), for
            jobs that fire transitions or call other hooks.
        settings: this plugin's settings.

    Returns: a dict of job name to ``async def job(payload: dict) -> None``. A job
    that raises is retried with backoff and finally recorded as failed with its
    error (collected).
    """


@hookspec
def register_periodic(runtime, settings):
    """Declare work to run on a schedule: polls, scans, clean-ups.

    When: once at start-up, in every process that runs jobs (the API process without
    ``REDIS_URL``, and every ``ordergraph worker``). Sync.

    Arguments:
        runtime: the service's ``Runtime``.
        settings: this plugin's settings.

    Returns: a dict of job name to ``Periodic(every, run)``, where ``run`` is
    ``async def run(now: datetime) -> None``. Each job runs at most once per ``every``
    across all processes (a row per job with its next run time, claimed by a
    conditional update); one that raises is logged and recorded, and runs again the
    next period (collected).
    """


@hookspec
def register_commands(commands, settings):
    """Add subcommands to the ``ordergraph`` command line.

    When: every time ``ordergraph`` runs, while its argument parser is built, for
    enabled plugins only. Sync.

    Arguments:
        commands: the ``argparse`` subparsers of ``ordergraph``; call
            ``commands.add_parser(name, help=...)``, add arguments, and
            ``set_defaults(run=function)``. ``ordergraph NAME ...`` then calls
            ``function(args, service_settings)`` (the parsed ``argparse.Namespace``
            and the service's ``ServiceSettings``) and exits with the ``int`` it
            returns. Use ``open_runtime(service_settings)`` for the database.
        settings: this plugin's settings.

    Returns: nothing. A name that the core or another plugin already uses stops the
    command line with an error.
    """


# -- Stage 1: entry ----------------------------------------------------------------


@hookspec
def validate_order(draft, settings):
    """Check an incoming order before anything is stored.

    When: on every submission from every channel, after the core's own checks
    (required fields, known SKUs, quantities, prices, customer, address), in the
    submitting request.

    Arguments:
        draft: the ``OrderDraft`` as submitted (channel, external id, customer,
            lines, address, currency, type, priority, note).
        settings: this plugin's settings.

    Returns: a list of ``Problem(code, message, field)``; any problem rejects the
    submission and every problem of every plugin is returned to the submitter
    (collected). Raising ``DomainError`` is the same as returning its problems; a
    plugin that fails in any other way rejects nothing and is logged.
    """


@hookspec
def parse_order(payload, settings):
    """Turn a raw payload this channel received into an ``OrderDraft``.

    When: when an operator replays an entry of the import inbox
    (``Mutation.replayImport``); only the plugin named like the entry's channel is
    called. Channels use the same function when the payload first arrives.

    Arguments:
        payload: the raw text the channel stored in the inbox (a webhook body, a
            CSV order's rows as JSON...).
        settings: this plugin's settings.

    Returns: an ``OrderDraft`` (first result). Raise ``DomainError`` with problems
    when the payload cannot be read; they are stored on the inbox entry.
    """


# -- Stage 2: review ----------------------------------------------------------------


@hookspec
def review_order(order, settings):
    """Check a received order: credit, stock, pricing, anything else.

    When: in the job runner, after an order enters the initial state (on submission
    and on resubmission), once per rule, in the order of ``[ordergraph]
    review_rules``. The lookups of ``plugin_api`` are shared by the rules of one
    review: a question another rule asked is answered without a query.

    Arguments:
        order: the ``OrderView`` being reviewed (status IN_REVIEW; ``start_review``
            is written with the decision, in one transaction).
        settings: this plugin's settings.

    Returns: a ``Finding(outcome, code, message, customer_message, data)`` or a list
    of them; ``outcome`` is ``pass``, ``fail`` or ``hold`` (collected). All pass:
    APPROVED. Any fail: REJECTED with every reason. Otherwise any hold: ON_HOLD.
    Every finding is stored on the order (``Order.reviewFindings``): staff read
    ``message``, customers ``customer_message`` (without it, a plain sentence for the
    outcome, never the staff message). A rule that raises or times out sends the order
    to ON_HOLD with the error recorded, never to APPROVED.
    """


# -- Stage 3: processing ---------------------------------------------------------------


@hookspec
def assign_order(order, teams, settings):
    """Choose the team and the person who will fulfil an approved order.

    When: in the job runner, when an order enters APPROVED (through the outbox), when
    work is released or handed back, and when a team's queue moves because someone
    freed up or came back. Sync, and pure: it is called inside the transaction that
    writes the assignment, while assignments are serialized across processes, so it
    must decide from its arguments alone (no database, no network).

    Arguments:
        order: the ``OrderView`` (type, priority, channel, total, shipping address).
        teams: every team as a ``TeamView``: its name, its round-robin pointer
            (``last_assigned``, a staff name or ``None``) and its members as
            ``Candidate``s (staff name, capacity, order types, availability, open
            orders by priority, and ``skipped``: why they cannot take this order, or
            ``None`` when they can).
        settings: this plugin's settings.

    Returns: an ``AssignmentChoice(team, member, rule, explanation)`` (first result).
    ``member`` ``None`` puts the order in the team's queue until someone can take
    it. ``explanation`` (a dict) is stored and shown on the order. No result: the
    order stays unassigned for staff to assign. A choice of a member who is
    skipped, or not in the team, counts as a failure of the plugin: the order waits
    in the team's queue and the failure is on its timeline.
    """


@hookspec
def apply_fulfilment(order, shipped, cancelled, settings):
    """Write this plugin's own records when goods ship or ordered quantities are cancelled.

    When: inside the transaction that records a shipment (``shipped``) or a short
    pick whose rest is cancelled (``cancelled``), before commit; the stock rule
    consumes or releases its reservation here, per quantity. Only database work
    belongs here.

    Arguments:
        order: the ``OrderView`` as read before the change.
        shipped: quantities that left the warehouse now, ``{sku: quantity}``.
        cancelled: quantities that will never ship, ``{sku: quantity}``.
        settings: this plugin's settings.

    Returns: nothing. Raise ``DomainError`` to abort: nothing is written and the
    caller gets the problems.
    """


# -- Stage 4: carriers and tracking ---------------------------------------------------


@hookspec
def create_shipment(order, shipment, settings):
    """Book a shipment with the carrier: buy its label and learn its tracking number.

    When: in the job runner (job ``book_shipment``), after staff ship a package with
    this plugin as the carrier and no tracking number, unless the plugin's
    ``buy_labels`` setting is false. Only the chosen carrier's plugin is called, with
    no transaction open and no row lock held. Not called again once a booking
    succeeded, nor while another call for the same shipment is under way.

    Arguments:
        order: the ``OrderView`` (its number, lines and ``shipping_address``).
        shipment: a dict with ``id``, ``carrier``, ``service``, ``reference`` (the
            order number), ``address`` (the order's shipping address) and ``parcels``
            (each with ``weightGrams``, ``lengthMm``, ``widthMm``, ``heightMm`` and its
            ``lines`` of ``lineNo`` and ``quantity``).
        settings: this plugin's settings.

    Returns: a ``Booking`` (``ordergraph.plugin_api``): the tracking number, one per
    parcel when the carrier numbers them, the label's bytes and format (``PDF``), and
    the ETA as an ``Estimate`` or ``None``. May be async. Raising (the carrier refused)
    opens a ``label_failed`` alert on the order and the job asks again later, backing
    off; timing out marks the booking unknown (the carrier may have booked) and the
    alert asks a person to check, without asking again. The booking that succeeds
    closes the alert; polling then tracks the number.
    """


@hookspec
def label_bought(order, shipment_id, carrier, booking, settings):
    """A carrier sold the label of one of an order's shipments.

    When: in the job runner, right after the label, its tracking numbers and a
    ``label_bought`` event on the order's timeline are stored (so once per shipment).
    The tracking stage takes the booking's estimate as the shipment's first ETA.

    Arguments:
        order: the ``OrderView``.
        shipment_id: the shipment's id.
        carrier: the name of the carrier plugin that sold it.
        booking: the carrier's ``Booking`` (tracking numbers, label, estimate).
        settings: this plugin's settings.

    Returns: nothing. May be async. A failure is recorded as the plugin's and changes
    nothing that is stored.
    """


@hookspec
def track_shipments(shipments, settings):
    """Ask the carrier what it knows about some of its shipments.

    When: by the carrier poll (``ordergraph.stages.tracking.polling``), for this plugin's
    shipments (those whose ``carrier`` is this plugin's name) not delivered or
    cancelled, at most ``poll_batch_size`` at a time, every ``poll_interval_minutes``,
    until ``stop_after_days`` after shipping (settings the plugin may declare;
    defaults 10, 120 and 90). Never while a row lock is held.

    Arguments:
        shipments: a list of dicts with ``id``, ``order``, ``carrier`` and
            ``tracking_number``.
        settings: this plugin's settings.

    Returns: a dict of tracking number to ``TrackingUpdate`` (events with their
    UTC offset, or a naive local time marked ``offset_unknown`` when the carrier's
    zone cannot be told; status and reason in karrio's vocabulary, structured
    location; the estimate). Numbers the carrier does not know may be left out.
    The core stores each event once and derives DELIVERED. A plugin that raises or times out makes
    the batch be asked again later, backing off.
    """


# -- Stage 5: settlement ---------------------------------------------------------------


@hookspec
def order_adjustments(order, lines, shipping, settings):
    """Propose promotions, discounts and surcharges for the final amount.

    When: when an order's statement is computed, after its delivery is confirmed
    (COMPLETED), on what was delivered.

    Arguments:
        order: the ``OrderView``.
        lines: the delivered lines, a list of ``ChargeLine`` (line_no, sku, name,
            quantity delivered, unit_price, amount), exact ``Decimal`` amounts.
        shipping: the shipping charge before adjustments (``Decimal``).
        settings: this plugin's settings.

    Returns: a list of ``Adjustment`` (code, label, signed amount in the order's
    currency, ``line_no`` for one line or ``None`` for the whole order, ``target``
    ``"lines"`` or ``"shipping"``, a ``reference`` such as a promotion id) (collected).
    A discount larger than what it applies to is capped there, and the statement says
    so. A plugin that fails stops the statement (the job retries); nothing is issued.
    """


@hookspec
def promotion_kinds(settings):
    """Declare kinds of promotion that admins can create promotions of.

    When: when promotions are created and evaluated (at submission for the price
    preview, at settlement for real). Sync.

    Arguments:
        settings: this plugin's settings.

    Returns: a list of ``PromotionKind`` (name, description, ``arguments`` as a tuple
    of ``Setting``, and ``apply(context, arguments)`` returning a list of
    ``Adjustment``); ``context`` is a ``PromotionContext`` (order, lines, shipping,
    customer_email, subtotal), and optionally ``check(arguments)`` returning what is
    wrong across the typed arguments by argument name) (collected). Arguments are
    checked against their settings and ``check`` when a promotion is created; a name
    declared twice keeps the first.
    """


@hookspec
def tax_rate(order, country, settings):
    """Give the tax rate for an order's destination.

    When: when an order's statement is computed. Async allowed.

    Arguments:
        order: the ``OrderView``.
        country: the destination country (ISO 3166 alpha-2, upper case).
        settings: this plugin's settings.

    Returns: the rate in percent as a ``Decimal`` (``Decimal("19")``), or ``None`` to
    leave it to the next plugin and finally to the built-in table of standard rates
    (overridden by ``tax_rates`` in ``[ordergraph.settlement]``) (first result).
    """


@hookspec
def delivery_problem_reported(order, problem, settings):
    """React to a problem a customer reported with a delivery: open an alert.

    When: after the problem is stored; the delivery's confirmation waits until staff
    resolve it (``resolveDeliveryProblem``).

    Arguments:
        order: the ``OrderView`` (DELIVERED).
        problem: the problem (id, reported_by, description, opened_at).
        settings: this plugin's settings.

    Returns: nothing (collected). A failure is logged; the problem stays recorded.
    """


@hookspec
def payment_instructions(order, settings):
    """Tell the customer how to pay: printed on the statement and its PDF.

    When: when an order's statement is issued (the statement number follows as the
    payment reference).

    Arguments:
        order: the ``OrderView``.
        settings: this plugin's settings.

    Returns: a sentence such as "Pay by bank transfer to IBAN ..." (collected, joined
    after the ``payment_instructions`` of ``[ordergraph.settlement]``).
    """


@hookspec
def collect_payment(order, statement, settings):
    """Ask for the statement's payment, online or offline.

    When: in the job runner, right after the statement is issued, when something is
    outstanding; never while a row lock is held. The job retries when it fails, so
    create provider objects with an idempotency key (such as the statement number).

    Arguments:
        order: the ``OrderView``.
        statement: the ``StatementView`` (number, currency, total, snapshot).
        settings: this plugin's settings.

    Returns: a dict of what was requested (``{"reference": "pi_..."}``), written on the
    order's timeline as ``payment_requested``, or ``None`` when this plugin does not
    collect this order's payment (first result). The money itself reaches the ledger
    later, from the provider's webhook or a file import.
    """


@hookspec
def refund_payment(statement, amount, method, entries, idempotency_key, settings):
    """Pay an overpayment back through the payment provider that collected it.

    When: in ``refundOverpayment`` (staff), before anything is written and outside any
    transaction, when the statement's ``refundable`` amount is above zero.

    Arguments:
        statement: the ``StatementView`` (number, currency, total).
        amount: the ``Decimal`` to pay back, in the statement's currency.
        method: the method the staff member named (``stripe``, ``bank_transfer``...).
        entries: the statement's ledger entries, oldest first (``EntryView``: kind,
            amount, method, reference such as the PaymentIntent, data).
        idempotency_key: give it to the provider: derived from the statement and its
            last ledger entry, so a repeated request for the same overpayment makes one
            refund.
        settings: this plugin's settings.

    Returns: ``None`` when this plugin does not handle ``method`` (first result; with no
    answer the refund is recorded as done by hand), else a dict ``{"reference":
    "re_...", "status": "succeeded" | "pending" | "requires_action"}``. The core records
    a ``refunded`` or ``refund_pending`` entry under the idempotency key
    ``METHOD:REFERENCE:KIND``; a webhook that reports the refund later records under the
    same kind of key (``refunded`` or ``refund_failed``). Raise (a ``DomainError`` with a
    message naming the provider's reason) when the provider refuses: nothing is recorded
    and the caller gets REFUND_FAILED with that message.
    """


# -- Every stage: transitions and notifications ------------------------------------------


@hookspec
def before_transition(order, transition, principal, reason, settings):
    """Allow or veto a status transition before it is written.

    When: in ``transition_order``, after the graph and role checks and before the
    transaction; the order is not locked. Transitions fired together (the review's
    ``start_review`` and its decision) are asked about one by one, in order.

    Arguments:
        order: the ``OrderView`` as read before the change; for a transition fired
            after another in the same transaction, with the status that one leaves.
        transition: the ``Transition`` about to fire (name, sources, target).
        principal: the ``Principal`` firing it.
        reason: the reason given by the caller, or ``None``.
        settings: this plugin's settings.

    Returns: ``None`` to allow, or a string: the reason for a veto (veto). A plugin
    that raises or times out vetoes, and the failure is recorded on the order.
    """


@hookspec
def apply_transition(order, transition, principal, settings):
    """Write this plugin's own records as part of a status change, atomically.

    When: inside the transaction of ``transition_order``, after the status update
    and before commit (for example, the stock rule reserves stock on ``approve``);
    once per transition when several are fired together, in order. The review
    decides the orders whose jobs started together in one transaction
    (``transition_orders``), calling this for each of them: a failure aborts them
    all, and each is then moved on its own, so the hook may be called again for an
    order whose batch was aborted. In such a batch the stock functions of
    ``ordergraph.plugin_api`` sum their changes, and write them in one statement
    after the last order's hooks: ``reserve_stock`` reports no shortage then, and a
    shortage in the total aborts the batch. Only database work belongs here: never
    call a carrier or a payment provider.

    Arguments:
        order: the ``OrderView`` as read before the change; for a transition fired
            after another in the same transaction, with the status that one leaves.
        transition: the ``Transition`` being written.
        principal: the ``Principal`` firing it.
        settings: this plugin's settings.

    Returns: nothing. Raise ``DomainError`` to abort the transition: nothing is
    written and the caller gets the problems. Any other failure aborts it too.
    """


@hookspec
def events_recorded(events, orders, settings):
    """Keep records derived from the timeline (counts, sums, durations) in step with it.

    When: inside the transaction that appends events to orders' timelines, as they
    are appended, so the derived records commit or roll back with them:
    every submission, transition, task, shipment, tracking update, alert and ledger
    entry that records an event. Events appended together come together, in the
    order of their ids. The analytics stage keeps its rollups through this hook.

    Arguments:
        events: the ``OrderEventView``s being appended, with their times, in the
            order their ids will take. Their ``id`` is 0: they are written together
            with the hook's writes (in one statement on PostgreSQL), unless a plugin
            reacts to them (``notify``, ``after_transition``), whose jobs need the ids
            first.
        orders: the ``OrderView``s of the submitted orders among them, by id (the
            rows may not be readable yet); read any other order you need.
        settings: this plugin's settings.

    Returns: a list of ``Upsert``s (``ordergraph.plugin_api``) to write in the same
    transaction (collected); the core writes them with the events, in one statement
    on PostgreSQL. An ``Upsert`` without a ``key`` appends its rows: counts that every
    transaction adds to (a day's total) are best appended and summed later, so that
    concurrent transactions never wait for each other's lock on one row, as the
    analytics stage does. Reads belong in the hook; writes in what it returns. A value
    the database should work out as it writes (from rows the hook would otherwise
    read first) can be an ``Sql`` expression: the analytics stage judges a customer
    new or returning so, and a submission reads nothing for it. A plugin that raises
    or times out refuses the change (``PLUGIN_FAILED``): nothing is written.
    """


@hookspec
def after_transition(order, event, settings):
    """React to a status change that has been committed.

    When: in the job runner, after commit, at least once per transition (use the
    event's ``id`` to make the work idempotent). Transition events get a job only
    while some enabled plugin implements this hook or ``notify``.

    Arguments:
        order: the ``OrderView`` after the change.
        event: the ``OrderEventView`` appended by the transition.
        settings: this plugin's settings.

    Returns: nothing. A plugin that raises makes the job retry.
    """


@hookspec
def notify(order, event, runtime, settings):
    """Tell someone about an event on an order: e-mail, SMS, chat, a webhook.

    When: in the job runner, after commit, at least once for every event appended to
    an order's timeline (its submission, every transition, an issued statement, a
    recorded plugin failure), while some enabled plugin implements this hook.

    Arguments:
        order: the ``OrderView``.
        event: the ``OrderEventView``.
        runtime: the service's ``Runtime``, for what depends on its settings (such as
            ``confirmation_link(settlement_config(runtime), order.id)``).
        settings: this plugin's settings.

    Returns: nothing. A plugin that raises makes the job retry.
    """

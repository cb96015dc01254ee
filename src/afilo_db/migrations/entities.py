"""Database objects that are not tables, declared as code so that autogenerate sees them.

Each declared extension, function and row-level-security policy is compared with the database by
creating the declared one in a rolled-back savepoint and comparing PostgreSQL's own rendering:
CREATE / REPLACE for the ones that differ, DROP for the ones in the database nobody declares.
`alembic-utils` does it for extensions; `compare_functions` and `compare_policies` below for
functions and policies, all at once rather than one by one, with alembic-utils' operations, so
revisions render the same.

The function bodies repeat those of the revisions (0001_baseline, 0003_knowledge, 0005_analytics,
0006_data_rules, 0011_variant_product_status, 0016_analytics_from_billing,
0019_mrr_by_billing_interval, 0020_knowledge_term_counts, 0021_renewals_counted_once,
0022_invoice_payment_links) on purpose: a revision is a frozen snapshot of history, this module is
the schema as it should be now.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import comparators
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic_utils.pg_extension import PGExtension
from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_policy import PGPolicy
from alembic_utils.replaceable_entity import (
    include_entity,
    register_entities,
)
from alembic_utils.reversible_op import CreateOp, DropOp, ReplaceOp
from alembic_utils.statement import normalize_whitespace
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from afilo_db.security import policies as security
from afilo_db.security import reads


class DeclaredExtension(PGExtension):
    """An extension compared without being created: its name and schema are all there is to
    compare, and alembic-utils' rehearsal (DROP then CREATE in a savepoint) fails wherever
    another role created it, the usual case on a hosted or DBA-run server: only an extension's
    owner may drop it, so the CREATE that follows meets the one still there."""

    def get_database_definition(
        self, sess: Any, dependencies: list[Any] | None = None
    ) -> DeclaredExtension:
        return self

    # A revision names alembic-utils' own class: revisions import nothing from afilo_db.
    @classmethod
    def render_import_statement(cls) -> str:
        return str(PGExtension.render_import_statement())

    def render_self_for_migration(self, omit_definition: bool = False) -> str:
        plain = PGExtension(schema=self.schema, signature=self.signature)
        return str(plain.render_self_for_migration(omit_definition))


EXTENSIONS = [
    DeclaredExtension(schema="public", signature="vector"),
    DeclaredExtension(schema="public", signature="btree_gist"),
]

FUNCTIONS = [
    PGFunction(
        schema="public",
        signature="uuid_generate_v7()",
        definition="""RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$""",
    ),
    PGFunction(
        schema="public",
        signature="check_pricing_tiers_contiguous()",
        definition="""RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  variant uuid;
  expected integer;
  tier record;
BEGIN
  FOREACH variant IN ARRAY ARRAY[
    CASE WHEN TG_OP <> 'DELETE' THEN NEW.variant_id END,
    CASE WHEN TG_OP <> 'INSERT' THEN OLD.variant_id END
  ] LOOP
    CONTINUE WHEN variant IS NULL;
    expected := 1;
    -- No tier can follow an unbounded one: the EXCLUDE constraint refuses the overlap.
    FOR tier IN
      SELECT min_quantity, max_quantity FROM product_pricing_tiers
      WHERE variant_id = variant ORDER BY min_quantity
    LOOP
      IF tier.min_quantity <> expected THEN
        RAISE EXCEPTION USING
          ERRCODE = 'check_violation',
          CONSTRAINT = 'ck_product_pricing_tiers_contiguous',
          TABLE = 'product_pricing_tiers',
          MESSAGE = format(
            'volume tiers of variant %s must cover quantities from 1 without gaps: '
            'expected a tier starting at %s, found one starting at %s',
            variant, expected, tier.min_quantity);
      END IF;
      expected := tier.max_quantity + 1;
    END LOOP;
  END LOOP;
  RETURN NULL;
END
$$""",
    ),
    PGFunction(
        schema="public",
        signature="create_event_partition(month date)",
        definition="""RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  month_start timestamptz := date_trunc('month', month)::timestamp AT TIME ZONE 'UTC';
  month_end timestamptz := (date_trunc('month', month) + interval '1 month')::timestamp
                           AT TIME ZONE 'UTC';
  partition_name text := format('events_p%s', to_char(month, 'YYYYMM'));
  stranded bigint;
BEGIN
  IF to_regclass(partition_name) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Rows of this month that landed in the default partition would make the new partition's
  -- creation fail: move them aside, create it, put them back (routed into it).
  CREATE TEMPORARY TABLE IF NOT EXISTS afilo_stranded_events (LIKE events) ON COMMIT DROP;
  WITH moved AS (
    DELETE FROM events_default WHERE occurred_at >= month_start AND occurred_at < month_end
    RETURNING *)
  INSERT INTO afilo_stranded_events SELECT * FROM moved;
  GET DIAGNOSTICS stranded = ROW_COUNT;
  EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                 partition_name, month_start, month_end);
  IF stranded > 0 THEN
    INSERT INTO events SELECT * FROM afilo_stranded_events;
    TRUNCATE afilo_stranded_events;
  END IF;
  RETURN true;
END
$$""",
    ),
    PGFunction(
        schema="public",
        signature="check_active_product_sellable()",
        definition="""RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  product uuid;
BEGIN
  -- TG_ARGV[0]: the column naming the product (products.id, product_variants.product_id).
  FOREACH product IN ARRAY ARRAY[
    CASE WHEN TG_OP <> 'DELETE' THEN (to_jsonb(NEW) ->> TG_ARGV[0])::uuid END,
    CASE WHEN TG_OP <> 'INSERT' THEN (to_jsonb(OLD) ->> TG_ARGV[0])::uuid END
  ] LOOP
    CONTINUE WHEN product IS NULL;
    IF EXISTS (
      SELECT 1 FROM products p
      WHERE p.id = product AND p.status = 'active'
        AND NOT EXISTS (
          SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND v.available_for_sale
        )
    ) THEN
      RAISE EXCEPTION USING
        ERRCODE = 'check_violation',
        CONSTRAINT = 'ck_products_active_has_variant_for_sale',
        TABLE = 'products',
        MESSAGE = format(
          'product %s is active but has no variant available for sale', product);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$""",
    ),
    PGFunction(
        schema="public",
        signature="ensure_event_partitions(first_month date, months integer)",
        definition="""RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  created integer := 0;
BEGIN
  FOR i IN 0 .. months - 1 LOOP
    IF create_event_partition((date_trunc('month', first_month) + make_interval(months => i))::date)
    THEN
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END
$$""",
    ),
    PGFunction(
        schema="public",
        signature="analytics_mark_dirty_days()",
        definition="""RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO analytics_dirty_days (day)
  SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM inserted_events
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$""",
    ),
    PGFunction(
        schema="public",
        signature="fill_variant_product_status()",
        definition="""RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  SELECT p.status INTO NEW.product_status FROM products p WHERE p.id = NEW.product_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING
      ERRCODE = 'foreign_key_violation',
      CONSTRAINT = 'fk_product_variants_product_id_product_status',
      TABLE = 'product_variants',
      MESSAGE = 'insert or update on table "product_variants" violates foreign key constraint'
        || ' "fk_product_variants_product_id_product_status"',
      DETAIL = format('Key (product_id)=(%s) is not present in table "products".',
                      NEW.product_id);
  END IF;
  RETURN NEW;
END
$$""",
    ),
    *(
        PGFunction(
            schema="public",
            signature=f"queue_knowledge_sync_{kind}()",
            definition=f"""RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path TO 'pg_catalog', 'public' AS $$
BEGIN
  INSERT INTO public.knowledge_sync_queue (product_id)
  SELECT DISTINCT {column} FROM changed_rows
  ON CONFLICT (product_id) DO NOTHING;
  RETURN NULL;
END
$$""",
        )
        for kind, column in (("products", "id"), ("variants", "product_id"))
    ),
]


# The row-level-security functions and policies come from their one source,
# afilo_db.security.policies; a policy in the database that is not there is proposed for DROP.
def _function(statement: str) -> PGFunction:
    """`CREATE FUNCTION name(args) rest` as a PGFunction (its own parser wants `AS $$` bodies)."""
    signature, _, definition = statement.strip().removeprefix("CREATE FUNCTION ").partition(") ")
    return PGFunction(schema="public", signature=signature + ")", definition=definition)


FUNCTIONS += [_function(statement) for statement in security.FUNCTIONS]
FUNCTIONS += [_function(read.create_sql) for read in reads.READ_FUNCTIONS]

# The analytics functions of revisions 0016, 0021 and 0022: money facts from stored Stripe
# events, the links from payments to the invoices they paid, the days of changed events, the
# references an event names.
FUNCTIONS += [
    _function(statement)
    for statement in (
        """CREATE FUNCTION analytics_record_stripe_payment(event webhook_events) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  obj jsonb := event.payload::jsonb -> 'data' -> 'object';
  kind text;
  reference text;
  cents jsonb;
  paid_at timestamptz := event.occurred_at;
  paid numeric;
  currency_code text := upper(obj ->> 'currency');
BEGIN
  IF event.event_type = 'invoice.paid' THEN
    kind := CASE WHEN coalesce(obj ->> 'subscription',
                               obj #>> '{parent,subscription_details,subscription}') IS NULL
                 THEN 'one_off' ELSE 'recurring' END;
    reference := obj ->> 'id';
    cents := obj -> 'amount_paid';
    IF jsonb_typeof(obj #> '{status_transitions,paid_at}') = 'number' THEN
      paid_at := to_timestamp((obj #>> '{status_transitions,paid_at}')::numeric);
    END IF;
    currency_code := coalesce(currency_code, (
      SELECT s.currency FROM user_subscriptions s
      WHERE s.stripe_subscription_id = coalesce(
        obj ->> 'subscription', obj #>> '{parent,subscription_details,subscription}')
      ORDER BY s.is_current DESC LIMIT 1));
  ELSIF event.event_type = 'payment_intent.succeeded' THEN
    IF obj ->> 'invoice' IS NOT NULL
       OR EXISTS (SELECT FROM stripe_invoice_payments l WHERE l.payment = obj ->> 'id') THEN
      RETURN;  -- an invoice's payment: its invoice.paid is the fact
    END IF;
    kind := 'one_off';
    reference := obj ->> 'id';
    cents := obj -> 'amount_received';
  ELSIF event.event_type = 'checkout.session.completed' THEN
    IF coalesce(obj ->> 'mode', 'payment') <> 'payment'
       OR obj ->> 'payment_status' IS DISTINCT FROM 'paid' THEN
      RETURN;
    END IF;
    IF obj ->> 'invoice' IS NOT NULL OR EXISTS (
         SELECT FROM stripe_invoice_payments l WHERE l.payment = obj ->> 'payment_intent') THEN
      RETURN;  -- a Checkout that made an invoice: its invoice.paid is the fact
    END IF;
    kind := 'one_off';
    reference := obj ->> 'payment_intent';
    cents := obj -> 'amount_total';
  ELSIF event.event_type = 'charge.refunded' THEN
    kind := 'refund';
    reference := event.event_id;
    cents := obj -> 'amount_refunded';
    currency_code := coalesce(currency_code, (
      SELECT p.currency FROM analytics_payments p
      WHERE p.kind IN ('one_off', 'recurring')
        AND p.reference IN (obj ->> 'payment_intent', obj ->> 'invoice') LIMIT 1));
  ELSE
    RETURN;
  END IF;
  IF jsonb_typeof(cents) <> 'number' OR reference IS NULL OR currency_code IS NULL THEN
    RETURN;  -- not a payment this can place; the handler judges the event itself
  END IF;
  paid := (cents #>> '{}')::numeric / 100;
  IF kind = 'refund' THEN
    -- amount_refunded is the charge's running total: the fact is what this event adds.
    SELECT paid - coalesce(sum(p.amount), 0) INTO paid
    FROM analytics_payments p WHERE p.kind = 'refund' AND p.charge = obj ->> 'id';
  END IF;
  IF paid <= 0 THEN
    RETURN;
  END IF;
  -- A one-off payment is reported twice (the session and the payment intent): one fact, dated
  -- by the earlier report.
  INSERT INTO analytics_payments AS p (kind, reference, amount, currency, occurred_at, charge,
                                       stripe_event_id)
  VALUES (kind, reference, paid, currency_code, paid_at,
          CASE WHEN kind = 'refund' THEN obj ->> 'id' END, event.event_id)
  ON CONFLICT ON CONSTRAINT pk_analytics_payments DO UPDATE SET
    occurred_at = excluded.occurred_at, stripe_event_id = excluded.stripe_event_id
  WHERE excluded.occurred_at < p.occurred_at;
END
$$
""",
        """CREATE FUNCTION analytics_record_stripe_payment_of_new_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM analytics_record_stripe_payment(NEW);
  RETURN NULL;
END
$$
""",
        """CREATE FUNCTION stripe_object_id(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(value) WHEN 'string' THEN value #>> '{}'
                                  WHEN 'object' THEN value ->> 'id' END
$$
""",
        """CREATE FUNCTION billing_link_invoice_payments(event webhook_events) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  obj jsonb := event.payload::jsonb -> 'data' -> 'object';
  invoice_object jsonb;
  invoice_id text;
  subscription_id text;
BEGIN
  IF event.event_type = 'invoice_payment.paid' THEN
    invoice_object := CASE WHEN jsonb_typeof(obj -> 'invoice') = 'object' THEN obj -> 'invoice' END;
    invoice_id := stripe_object_id(obj -> 'invoice');
  ELSE
    invoice_object := obj;
    invoice_id := obj ->> 'id';
  END IF;
  IF invoice_id IS NULL THEN
    RETURN;  -- not an invoice's payment this can place; the handler judges the event itself
  END IF;
  subscription_id := coalesce(
    stripe_object_id(invoice_object -> 'subscription'),
    stripe_object_id(invoice_object #> '{parent,subscription_details,subscription}'));
  IF subscription_id IS NULL AND invoice_object IS NULL THEN
    -- An InvoicePayment names its invoice by id: the invoice's own stored event says whose.
    SELECT coalesce(
             stripe_object_id(i.payload::jsonb #> '{data,object,subscription}'),
             stripe_object_id(i.payload::jsonb
                              #> '{data,object,parent,subscription_details,subscription}'))
      INTO subscription_id
    FROM webhook_events i
    WHERE i.provider = 'stripe' AND i.subject = invoice_id AND i.event_type LIKE 'invoice.%'
    ORDER BY i.occurred_at DESC LIMIT 1;
  ELSIF subscription_id IS NOT NULL THEN
    -- Payments linked to the invoice by id before any event said whose it is.
    UPDATE stripe_invoice_payments SET subscription = subscription_id
    WHERE stripe_invoice_payments.invoice = invoice_id
      AND stripe_invoice_payments.subscription IS NULL;
  END IF;
  -- An InvoicePayment's `payment`; an invoice's `payments` (2025-03-31 on) or its
  -- `payment_intent` and `charge` (before).
  WITH named AS (
    SELECT DISTINCT stripe_object_id(value) AS payment FROM (
      SELECT obj #> '{payment,payment_intent}' UNION ALL SELECT obj #> '{payment,charge}'
      UNION ALL SELECT obj -> 'payment_intent' UNION ALL SELECT obj -> 'charge'
      UNION ALL SELECT jsonb_path_query(obj, 'lax $.payments.data[*].payment.payment_intent')
      UNION ALL SELECT jsonb_path_query(obj, 'lax $.payments.data[*].payment.charge')
    ) AS found(value)
  ), linked AS (
    INSERT INTO stripe_invoice_payments (payment, invoice, subscription, stripe_event_id)
    SELECT named.payment, invoice_id, subscription_id, event.event_id
    FROM named WHERE named.payment IS NOT NULL
    ON CONFLICT ON CONSTRAINT pk_stripe_invoice_payments DO UPDATE
      SET subscription = coalesce(stripe_invoice_payments.subscription, excluded.subscription)
    RETURNING stripe_invoice_payments.payment
  )
  -- A payment that arrived before its link was counted as a one-off sale: its invoice's
  -- invoice.paid is the fact.
  DELETE FROM analytics_payments p USING linked
  WHERE p.kind = 'one_off' AND p.reference = linked.payment;
END
$$
""",
        """CREATE FUNCTION billing_link_invoice_payments_of_new_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM billing_link_invoice_payments(NEW);
  RETURN NULL;
END
$$
""",
        """CREATE FUNCTION analytics_forget_stripe_payment() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  DELETE FROM analytics_payments WHERE stripe_event_id = OLD.event_id;
  RETURN NULL;
END
$$
""",
        """CREATE FUNCTION analytics_mark_removed_days() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO analytics_dirty_days (day)
  SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM removed_events
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$
""",
        """CREATE FUNCTION analytics_unknown_references(users uuid[], products uuid[]) RETURNS TABLE (field text, id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT 'user_id', u FROM unnest(users) AS u
  WHERE NOT EXISTS (SELECT FROM user_profiles p WHERE p.id = u)
  UNION ALL
  SELECT 'product_id', x FROM unnest(products) AS x
  WHERE NOT EXISTS (SELECT FROM products p WHERE p.id = x)
$$
""",
        # Revision 0020: the lexeme counts knowledge search weighs words by.
        """CREATE FUNCTION count_knowledge_terms() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path TO 'pg_catalog', 'public' AS $$
DECLARE
  _lexemes text[];
  _changes integer[];
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM public.knowledge_terms;
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT array_agg(lexeme ORDER BY lexeme), array_agg(change ORDER BY lexeme)
    INTO _lexemes, _changes
    FROM (SELECT lexeme, count(*)::integer AS change
          FROM added_rows a CROSS JOIN LATERAL unnest(tsvector_to_array(a.searchable_text)) AS lexeme
          WHERE a.is_published GROUP BY lexeme) changes;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(lexeme ORDER BY lexeme), array_agg(change ORDER BY lexeme)
    INTO _lexemes, _changes
    FROM (SELECT lexeme, -count(*)::integer AS change
          FROM removed_rows r CROSS JOIN LATERAL unnest(tsvector_to_array(r.searchable_text)) AS lexeme
          WHERE r.is_published GROUP BY lexeme) changes;
  ELSE
    SELECT array_agg(lexeme ORDER BY lexeme), array_agg(change ORDER BY lexeme)
    INTO _lexemes, _changes
    FROM (SELECT lexeme, sum(change)::integer AS change
          FROM (SELECT a.searchable_text AS added, a.is_published AS added_published,
                       r.searchable_text AS removed, r.is_published AS removed_published
                FROM added_rows a JOIN removed_rows r USING (id)
                WHERE a.searchable_text IS DISTINCT FROM r.searchable_text
                   OR a.is_published IS DISTINCT FROM r.is_published) changed
          CROSS JOIN LATERAL (
            SELECT lexeme, 1 AS change FROM unnest(tsvector_to_array(changed.added)) AS lexeme
            WHERE changed.added_published
            UNION ALL
            SELECT lexeme, -1 FROM unnest(tsvector_to_array(changed.removed)) AS lexeme
            WHERE changed.removed_published) moved
          GROUP BY lexeme HAVING sum(change) <> 0) changes;
  END IF;
  IF _lexemes IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO public.knowledge_terms (lexeme, passages)
  SELECT lexeme, 0 FROM unnest(_lexemes) AS lexeme
  ON CONFLICT (lexeme) DO NOTHING;
  PERFORM FROM public.knowledge_terms t WHERE t.lexeme = ANY (_lexemes) ORDER BY t.lexeme FOR UPDATE;
  UPDATE public.knowledge_terms t SET passages = greatest(0, t.passages + c.change)
  FROM unnest(_lexemes, _changes) AS c(lexeme, change)
  WHERE t.lexeme = c.lexeme;
  DELETE FROM public.knowledge_terms t WHERE t.lexeme = ANY (_lexemes) AND t.passages = 0;
  RETURN NULL;
END
$$
""",
    )
]
# Revision 0019: the months a subscription state's price bills for, from its Stripe event.
FUNCTIONS += [
    _function(statement)
    for statement in (
        """CREATE FUNCTION subscription_interval_months(subscription jsonb, price_id text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((
    SELECT CASE coalesce(r ->> 'interval', '')
             WHEN 'month' THEN 1 WHEN 'year' THEN 12
             WHEN 'week' THEN 12 / 52.0 WHEN 'day' THEN 12 / 365.0 END
           * CASE WHEN jsonb_typeof(r -> 'interval_count') = 'number'
                       AND (r ->> 'interval_count')::numeric > 0
                  THEN (r ->> 'interval_count')::numeric ELSE 1 END
    FROM jsonb_array_elements(CASE
           WHEN jsonb_typeof(subscription #> '{items,data}') = 'array'
           THEN subscription #> '{items,data}'
           ELSE jsonb_build_array(jsonb_build_object('plan', subscription -> 'plan')) END) AS item,
         LATERAL (SELECT CASE WHEN jsonb_typeof(item #> '{price,recurring}') = 'object'
                              THEN item #> '{price,recurring}' ELSE item -> 'plan' END) AS p(r)
    WHERE coalesce(item #>> '{price,id}', item #>> '{plan,id}') = price_id
      AND jsonb_typeof(r) = 'object'
    LIMIT 1), 1)
$$
""",
        """CREATE FUNCTION user_subscriptions_set_interval_months() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  SELECT subscription_interval_months(e.payload::jsonb #> '{data,object}', NEW.stripe_price_id)
  INTO NEW.interval_months
  FROM webhook_events e WHERE e.provider = 'stripe' AND e.event_id = NEW.state_event_id;
  NEW.interval_months := coalesce(NEW.interval_months, 1);
  RETURN NEW;
END
$$
""",
    )
]
POLICIES: list[PGPolicy] = [
    PGPolicy(
        schema="public",
        signature=policy.name,
        on_entity=f"public.{policy.table}",
        definition=policy.definition(),
    )
    for policy in security.policies()
]


FUNCTION_SCHEMA = "public"


def _functions_in_database(connection: Connection) -> list[PGFunction]:
    """The schema's functions, as alembic-utils reads them (not those of extensions)."""
    functions: list[PGFunction] = PGFunction.from_database(connection, FUNCTION_SCHEMA)  # type: ignore[no-untyped-call]
    return functions


def _function_name(signature: str) -> str:
    return signature.split("(", 1)[0].strip().strip('"')


def _render_functions(connection: Connection, declared: list[PGFunction]) -> dict[str, PGFunction]:
    """The declared functions as PostgreSQL renders them (pg_get_functiondef), by declared
    identity: all dropped, then all created, in one savepoint that is rolled back, as alembic-utils'
    simulation does for one function at a time. A function PostgreSQL refuses to create fails the
    comparison, as it does in alembic-utils."""
    outer = connection.begin_nested()
    try:
        for function in declared:
            attempt = connection.begin_nested()
            try:
                connection.execute(function.to_sql_statement_drop(cascade=True))  # type: ignore[no-untyped-call]
                attempt.commit()
            except DBAPIError:
                attempt.rollback()  # not there yet: nothing to drop
        remaining = {function.identity for function in _functions_in_database(connection)}
        for function in declared:
            connection.execute(function.to_sql_statement_create())  # type: ignore[no-untyped-call]
        # Declared names are unique, so a name finds its own rendering among the new functions.
        created = {
            _function_name(function.signature): function
            for function in _functions_in_database(connection)
            if function.identity not in remaining
        }
    finally:
        outer.rollback()
    return {
        function.identity: created[_function_name(function.signature)]
        for function in declared
        if _function_name(function.signature) in created
    }


@comparators.dispatch_for("schema")
def compare_functions(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Any
) -> None:
    """CREATE, REPLACE and DROP for the schema's functions, as alembic-utils would propose.

    alembic-utils compares each declared function in savepoints of its own, reading and parsing
    every function of the schema five times per declared one; autogenerate (`migrate diff`,
    `migrate new`, `db push`) spent most of its time there. Here the declared functions are
    created once, inside one rolled-back savepoint, and the schema's functions read three times.
    Registered before `compare_policies`, so that a function a policy calls is created first.
    """
    connection = autogen_context.connection
    assert connection is not None
    declared = [
        function
        for function in FUNCTIONS
        if include_entity(function, autogen_context, reflected=False)
    ]
    live = {function.identity: function for function in _functions_in_database(connection)}
    rendered = _render_functions(connection, declared)
    for function in declared:
        as_postgres = rendered[function.identity]
        current = live.get(as_postgres.identity)
        if current is None:
            upgrade_ops.ops.append(CreateOp(function))
        elif normalize_whitespace(as_postgres.definition) != normalize_whitespace(
            current.definition
        ):
            # ReplaceOp's downgrade renders the definition it replaces from here.
            function._version_to_replace = current  # type: ignore[assignment]
            upgrade_ops.ops.append(ReplaceOp(function))
    rendered_identities = {function.identity for function in rendered.values()}
    for identity, current in live.items():
        if identity not in rendered_identities and include_entity(
            current, autogen_context, reflected=True
        ):
            upgrade_ops.ops.append(DropOp(current))


POLICY_SCHEMA = "public"


def _policies_in_database(connection: Connection) -> list[PGPolicy]:
    policies: list[PGPolicy] = PGPolicy.from_database(  # type: ignore[no-untyped-call]
        connection, POLICY_SCHEMA
    )
    return policies


def _render_as_postgres(connection: Connection, declared: list[PGPolicy]) -> dict[str, PGPolicy]:
    """The declared policies as PostgreSQL renders them (pg_policies), by identity: each created in
    a savepoint that is rolled back. A policy PostgreSQL refuses to create here (its table is new,
    say) is left out."""
    outer = connection.begin_nested()
    try:
        for policy in declared:
            attempt = connection.begin_nested()
            try:
                connection.execute(
                    text(f"DROP POLICY IF EXISTS {policy.signature} ON {policy.on_entity}")
                )
                connection.execute(policy.to_sql_statement_create())  # type: ignore[no-untyped-call]
                attempt.commit()
            except DBAPIError:
                attempt.rollback()
        rendered = _policies_in_database(connection)
    finally:
        outer.rollback()
    declared_identities = {policy.identity for policy in declared}
    return {
        policy.identity: policy for policy in rendered if policy.identity in declared_identities
    }


@comparators.dispatch_for("schema")
def compare_policies(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Any
) -> None:
    """CREATE, REPLACE and DROP for row-level-security policies, as alembic-utils would propose.

    alembic-utils compares each declared entity in savepoints of its own and reads every policy of
    the schema, parsing each, twice per declared policy (olirice/alembic_utils#173): the work
    grows with the square of the policies. Here the declared policies are created once, inside
    one rolled-back savepoint, and the schema's policies read twice (docs/measured-choices.md).
    """
    connection = autogen_context.connection
    assert connection is not None
    declared = [
        policy for policy in POLICIES if include_entity(policy, autogen_context, reflected=False)
    ]
    live = {policy.identity: policy for policy in _policies_in_database(connection)}
    rendered = _render_as_postgres(connection, declared)
    for policy in declared:
        current = live.get(policy.identity)
        if current is None:
            upgrade_ops.ops.append(CreateOp(policy))
            continue
        as_postgres = rendered.get(policy.identity)
        if as_postgres is None or normalize_whitespace(as_postgres.definition) != (
            normalize_whitespace(current.definition)
        ):
            # ReplaceOp's downgrade renders the definition it replaces from here.
            policy._version_to_replace = current  # type: ignore[assignment]
            upgrade_ops.ops.append(ReplaceOp(policy))
    declared_identities = {policy.identity for policy in POLICIES}
    for identity, current in live.items():
        if identity not in declared_identities and include_entity(
            current, autogen_context, reflected=True
        ):
            upgrade_ops.ops.append(DropOp(current))


def register() -> None:
    """Make autogenerate compare extensions through alembic-utils (idempotent); functions and
    policies are compared by `compare_functions` and `compare_policies`, registered with Alembic
    on import."""
    register_entities(EXTENSIONS, entity_types=[DeclaredExtension])

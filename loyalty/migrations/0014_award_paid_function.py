"""The lean award path on PostgreSQL as a PL/pgSQL function (``loyalty.services.award``).

A function rather than one long statement sent each time: PostgreSQL plans the statements of
a function once per connection and reuses the plans, where a statement sent as text is planned
on every call (about 1.5 ms for the award, more than its execution). It works behind any
connection pooler (no prepared statements). Other databases get nothing: they take the
portable path.

The body is kept here, frozen with the migration; a later change is a new migration with
``CREATE OR REPLACE``.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION loyalty_award_paid_v1(
    -- what the process believes about the programme (checked: else 'portable')
    p_program_id bigint, p_slug text, p_currency text, p_version timestamptz, p_rate numeric,
    p_pending_days integer, p_lifetime integer, p_expiry_policy text, p_email_earned boolean,
    -- the event
    p_event_key text, p_kind text, p_reference text, p_payload jsonb, p_now timestamptz,
    p_email text, p_amount numeric, p_at timestamptz, p_category text,
    -- a member's payment (p_user_id NULL: a guest's)
    p_user_id {user_id_type}, p_points integer, p_tier_ids bigint[], p_tier_points integer[],
    p_tier_ranks integer[], p_held boolean, p_approve_at timestamptz, p_first_pays boolean,
    p_expires_at timestamptz, p_earn_key text, p_tier_entry text,
    p_q_kinds text[], p_q_from timestamptz[], p_q_highest integer[], p_candidates integer,
    -- what it did: 'applied', 'duplicate' (the event key exists) or 'portable' (nothing written)
    OUT o_outcome text, OUT o_inbox_id bigint, OUT o_purchase_id bigint, OUT o_entry_id bigint,
    OUT o_remaining integer, OUT o_pending_id bigint, OUT o_points integer, OUT o_tier_id bigint,
    OUT o_qualified numeric[], OUT o_member loyalty_member
) LANGUAGE plpgsql VOLATILE AS $body$
DECLARE
    v_member_id bigint;
    v_balance integer;
    v_orders integer;
    v_rank integer;
    v_earned integer := 0;
    v_held integer := 0;
    v_value numeric;
BEGIN
    o_outcome := 'portable';
    PERFORM 1 FROM loyalty_program p
    WHERE p.id = p_program_id AND p.is_active AND p.currency = p_currency
      AND p.config_changed_at = p_version AND p.points_per_unit = p_rate
      AND p.pending_days = p_pending_days AND p.points_lifetime_days IS NOT DISTINCT FROM p_lifetime
      AND p.expiry_policy = p_expiry_policy AND p.email_points_earned = p_email_earned
      AND CASE WHEN p_slug IS NOT NULL THEN p.slug = p_slug
               ELSE p.id = (SELECT q.id FROM loyalty_program q WHERE q.is_active AND q.currency = p_currency
                            ORDER BY q.id LIMIT 1) END;
    IF NOT FOUND THEN
        RETURN;  -- the process's programme knowledge is stale
    END IF;

    IF p_user_id IS NULL THEN  -- a guest: the inbox row and the purchase
        INSERT INTO loyalty_orderevent
            (event_key, kind, order_reference, payload, status, received_at, processed_at, attempts, last_error)
        VALUES (p_event_key, p_kind, p_reference, p_payload, 'processed', p_now, p_now, 1, '')
        ON CONFLICT (event_key) DO NOTHING
        RETURNING id INTO o_inbox_id;
        IF o_inbox_id IS NULL THEN
            o_outcome := 'duplicate';
            RETURN;
        END IF;
        INSERT INTO loyalty_purchase
            (program_id, member_id, email, order_reference, amount, refunded_amount, currency, status,
             points_earned, points_reversed, occurred_at, category)
        VALUES (p_program_id, NULL, p_email, p_reference, p_amount, 0, p_currency, 'paid', 0, 0, p_at, p_category)
        RETURNING id INTO o_purchase_id;
        o_outcome := 'applied';
        RETURN;
    END IF;

    SELECT mb.id, mb.balance, mb.tier_id, mb.orders_count INTO v_member_id, v_balance, o_tier_id, v_orders
    FROM loyalty_member mb
    WHERE mb.program_id = p_program_id AND mb.user_id = p_user_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;  -- not a member yet
    END IF;
    v_rank := COALESCE(p_tier_ranks[array_position(p_tier_ids, o_tier_id)], -1);
    o_points := COALESCE(p_tier_points[array_position(p_tier_ids, o_tier_id)], p_points);
    IF v_orders = 0 AND NOT (o_points > 0 AND p_held) AND (p_first_pays OR EXISTS (
            SELECT 1 FROM loyalty_referral r WHERE r.friend_id = v_member_id AND r.status = 'pending')) THEN
        RETURN;  -- a first order that pays a bonus or completes a referral
    END IF;

    -- What tier evaluation needs, before this order: measured only for windows that a tier
    -- above the member's uses. (Read after the lock: a payment that committed meanwhile counts.)
    IF p_q_kinds IS NOT NULL THEN
        o_qualified := '{{}}';
        FOR i IN 1 .. coalesce(array_length(p_q_kinds, 1), 0) LOOP
            v_value := NULL;
            IF v_rank < p_q_highest[i] THEN
                IF p_q_kinds[i] = 'spend' THEN
                    SELECT COALESCE(SUM(pu.amount - pu.refunded_amount), 0) INTO v_value
                    FROM loyalty_purchase pu
                    WHERE pu.member_id = v_member_id AND pu.occurred_at > p_q_from[i] AND pu.occurred_at <= p_at
                      AND pu.status <> 'cancelled';
                ELSE
                    SELECT COALESCE(SUM(en.points), 0) INTO v_value
                    FROM loyalty_pointsentry en
                    WHERE en.member_id = v_member_id AND en.created_at > p_q_from[i] AND en.created_at <= p_at
                      AND en.kind IN ('earn', 'bonus', 'reverse') AND en.idempotency_key NOT LIKE p_tier_entry;
                END IF;
            END IF;
            o_qualified := o_qualified || v_value;
        END LOOP;
    END IF;

    INSERT INTO loyalty_orderevent
        (event_key, kind, order_reference, payload, status, received_at, processed_at, attempts, last_error)
    VALUES (p_event_key, p_kind, p_reference, p_payload, 'processed', p_now, p_now, 1, '')
    ON CONFLICT (event_key) DO NOTHING
    RETURNING id INTO o_inbox_id;
    IF o_inbox_id IS NULL THEN
        o_outcome := 'duplicate';
        RETURN;
    END IF;
    INSERT INTO loyalty_purchase
        (program_id, member_id, email, order_reference, amount, refunded_amount, currency, status,
         points_earned, points_reversed, occurred_at, category)
    VALUES (p_program_id, v_member_id, p_email, p_reference, p_amount, 0, p_currency, 'paid',
            o_points, 0, p_at, p_category)
    RETURNING id INTO o_purchase_id;

    IF o_points > 0 AND NOT p_held THEN
        -- the lot pays back a negative balance first
        INSERT INTO loyalty_pointsentry
            (program_id, member_id, kind, points, remaining, expires_at, idempotency_key, reference,
             description, purchase_id, created_at)
        VALUES (p_program_id, v_member_id, 'earn', o_points, GREATEST(0, LEAST(o_points, o_points + v_balance)),
                p_expires_at, p_earn_key, p_reference, '', o_purchase_id, p_at)
        RETURNING id, remaining INTO o_entry_id, o_remaining;
        v_earned := o_points;
    ELSIF o_points > 0 THEN
        INSERT INTO loyalty_pendingpoints (program_id, member_id, purchase_id, points, approve_at, status)
        VALUES (p_program_id, v_member_id, o_purchase_id, o_points, p_approve_at, 'pending')
        RETURNING id INTO o_pending_id;
        v_held := o_points;
    END IF;

    UPDATE loyalty_member mb SET
        balance = mb.balance + v_earned,
        lifetime_points = mb.lifetime_points + v_earned,
        pending_points = mb.pending_points + v_held,
        orders_count = mb.orders_count + 1,
        last_purchase_at = GREATEST(COALESCE(mb.last_purchase_at, p_at), p_at)
    WHERE mb.id = v_member_id
    RETURNING mb.* INTO o_member;

    -- Attribution: the newest campaign message (or control row) whose window holds the order.
    UPDATE loyalty_message msg
    SET converted_at = p_at, conversion_purchase_id = o_purchase_id, revenue = p_amount
    WHERE msg.converted_at IS NULL AND msg.id = (
        SELECT c.id FROM (
            SELECT mm.id, CASE WHEN mm.status = 'sent' THEN mm.sent_at ELSE mm.created_at END AS started,
                   cp.attribution_days
            FROM loyalty_message mm JOIN loyalty_campaign cp ON cp.id = mm.campaign_id
            WHERE mm.member_id = v_member_id AND mm.status IN ('sent', 'control') AND mm.converted_at IS NULL
              AND CASE WHEN mm.status = 'sent' THEN mm.sent_at ELSE mm.created_at END <= p_at
            ORDER BY started DESC, mm.id DESC
            LIMIT p_candidates
        ) c
        WHERE p_at <= c.started + c.attribution_days * INTERVAL '1 day'
        ORDER BY c.started DESC, c.id DESC
        LIMIT 1
    );
    o_outcome := 'applied';
END
$body$;
"""


def create(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'loyalty_member'::regclass AND attname = 'user_id'"
        )
        (user_id_type,) = cursor.fetchone()  # the user model's primary key type
        cursor.execute(FUNCTION.format(user_id_type=user_id_type))


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS loyalty_award_paid_v1")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0013_staff_adjust_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]

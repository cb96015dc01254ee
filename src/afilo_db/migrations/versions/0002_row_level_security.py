"""Row-level security: the application and service roles, grants, policies on every table.

The roles are created when the connected role may create roles (the embedded server's superuser,
Neon's project owner); otherwise they must exist already (`afilo-db db roles` prints the SQL).

Frozen: the SQL below was rendered from `afilo_db.security.policies` and `afilo_db.security.roles`
when this revision was written, and is never rendered again, so that editing those modules (which
stay the source for autogenerating new revisions) cannot change what this revision runs.

Revision ID: 0002_row_level_security
Revises: 0001_baseline
Create Date: 2026-11-26 09:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_row_level_security"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES: tuple[str, ...] = (
    """
DO $roles$
BEGIN
  IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
    RAISE NOTICE 'role % may not create roles: afilo_app and afilo_service must exist already '
      '(`afilo-db db roles` prints the SQL to create them)', current_user;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'afilo_service') THEN
    CREATE ROLE afilo_service NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'afilo_app') THEN
    -- LOGIN without a password: nobody can log in until `afilo-db up` or `db roles` sets one.
    CREATE ROLE afilo_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION NOINHERIT;
  END IF;
  IF NOT pg_has_role('afilo_app', 'afilo_service', 'MEMBER') THEN
    GRANT afilo_service TO afilo_app;
  END IF;
END
$roles$
""",
    """
DO $verify$
DECLARE
  missing text[] := ARRAY(
    SELECT name FROM unnest(ARRAY['afilo_app', 'afilo_service']) AS name
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name));
  unsafe text[];
BEGIN
  IF cardinality(missing) > 0 THEN
    RAISE EXCEPTION 'roles % do not exist and % may not create them', missing, current_user
      USING HINT = 'run `afilo-db db roles`, execute the SQL it prints as a role with CREATEROLE, '
                   'then migrate again';
  END IF;
  unsafe := ARRAY(
    SELECT rolname FROM pg_roles
    WHERE rolname IN ('afilo_app', 'afilo_service')
      AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication));
  IF cardinality(unsafe) > 0 THEN
    RAISE EXCEPTION 'roles % must be NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION',
      unsafe;
  END IF;
  IF pg_has_role('afilo_app', 'afilo_service', 'USAGE') THEN
    RAISE EXCEPTION 'afilo_app inherits the rights of afilo_service: it must be NOINHERIT';
  END IF;
  IF pg_has_role('afilo_app', current_user, 'MEMBER') THEN
    RAISE EXCEPTION 'afilo_app is a member of the owner %', current_user;
  END IF;
END
$verify$
""",
)

POLICIES_UP: tuple[str, ...] = (
    """
CREATE FUNCTION current_clerk_user_id() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN nullif(current_setting('afilo.clerk_user_id', true), '')
""",
    """
CREATE FUNCTION current_user_profile_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
  SELECT id FROM public.user_profiles WHERE clerk_user_id = public.current_clerk_user_id();
END
""",
    "GRANT USAGE ON SCHEMA public TO afilo_app, afilo_service",
    "ALTER TABLE user_profiles ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE user_profiles FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON user_profiles TO afilo_app",
    "GRANT UPDATE (email, display_name, updated_at) ON user_profiles TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON user_profiles TO afilo_service",
    "ALTER TABLE cart_items ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE cart_items FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON cart_items TO afilo_app",
    "GRANT INSERT ON cart_items TO afilo_app",
    "GRANT DELETE ON cart_items TO afilo_app",
    "GRANT UPDATE (variant_id, quantity, updated_at) ON cart_items TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON cart_items TO afilo_service",
    "ALTER TABLE downloads ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE downloads FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON downloads TO afilo_app",
    "GRANT INSERT ON downloads TO afilo_app",
    "GRANT SELECT, INSERT ON downloads TO afilo_service",
    "ALTER TABLE chat_conversations ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE chat_conversations FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON chat_conversations TO afilo_app",
    "GRANT INSERT ON chat_conversations TO afilo_app",
    "GRANT DELETE ON chat_conversations TO afilo_app",
    "GRANT UPDATE (title, status, updated_at) ON chat_conversations TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON chat_conversations TO afilo_service",
    "ALTER TABLE chat_messages ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE chat_messages FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON chat_messages TO afilo_app",
    "GRANT INSERT ON chat_messages TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON chat_messages TO afilo_service",
    "ALTER TABLE user_subscriptions ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE user_subscriptions FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON user_subscriptions TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE ON user_subscriptions TO afilo_service",
    "ALTER TABLE purchases ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE purchases FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON purchases TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE ON purchases TO afilo_service",
    "ALTER TABLE user_activity_log ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE user_activity_log FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON user_activity_log TO afilo_app",
    "GRANT INSERT ON user_activity_log TO afilo_app",
    "GRANT SELECT, INSERT ON user_activity_log TO afilo_service",
    "ALTER TABLE bot_analytics ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE bot_analytics FORCE ROW LEVEL SECURITY",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON bot_analytics TO afilo_service",
    "ALTER TABLE events ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE events FORCE ROW LEVEL SECURITY",
    "GRANT SELECT, INSERT ON events TO afilo_service",
    "ALTER TABLE products ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE products FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON products TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON products TO afilo_service",
    "ALTER TABLE product_variants ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE product_variants FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON product_variants TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON product_variants TO afilo_service",
    "ALTER TABLE product_pricing_tiers ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE product_pricing_tiers FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON product_pricing_tiers TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON product_pricing_tiers TO afilo_service",
    "ALTER TABLE product_collections ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE product_collections FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON product_collections TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON product_collections TO afilo_service",
    "ALTER TABLE product_collection_products ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE product_collection_products FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON product_collection_products TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON product_collection_products TO afilo_service",
    "ALTER TABLE knowledge_base ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE knowledge_base FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON knowledge_base TO afilo_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge_base TO afilo_service",
    """
CREATE POLICY user_profiles_app_select ON user_profiles AS PERMISSIVE FOR SELECT TO afilo_app
USING (clerk_user_id = (SELECT current_clerk_user_id()))
""",
    """
CREATE POLICY user_profiles_app_update ON user_profiles AS PERMISSIVE FOR UPDATE TO afilo_app
USING (clerk_user_id = (SELECT current_clerk_user_id()))
WITH CHECK (clerk_user_id = (SELECT current_clerk_user_id()))
""",
    """
CREATE POLICY user_profiles_service_select ON user_profiles AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY user_profiles_service_insert ON user_profiles AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY user_profiles_service_update ON user_profiles AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY user_profiles_service_delete ON user_profiles AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY cart_items_app_select ON cart_items AS PERMISSIVE FOR SELECT TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY cart_items_app_insert ON cart_items AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY cart_items_app_delete ON cart_items AS PERMISSIVE FOR DELETE TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY cart_items_app_update ON cart_items AS PERMISSIVE FOR UPDATE TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
WITH CHECK (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY cart_items_service_select ON cart_items AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY cart_items_service_insert ON cart_items AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY cart_items_service_update ON cart_items AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY cart_items_service_delete ON cart_items AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY downloads_app_select ON downloads AS PERMISSIVE FOR SELECT TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY downloads_app_insert ON downloads AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()) AND (
  EXISTS (
    SELECT FROM user_subscriptions s JOIN products p ON p.id = downloads.product_id
    WHERE s.id = downloads.subscription_id AND s.user_id = downloads.user_id
      AND s.status IN ('trialing', 'active')
      AND array_position(ARRAY['free', 'starter', 'professional', 'enterprise'], s.tier)
          >= array_position(ARRAY['free', 'starter', 'professional', 'enterprise'], p.included_in_tier))
  OR EXISTS (
    SELECT FROM purchases pu
    WHERE pu.id = downloads.purchase_id AND pu.user_id = downloads.user_id
      AND pu.product_id = downloads.product_id AND pu.status = 'paid')))
""",
    """
CREATE POLICY downloads_service_select ON downloads AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY downloads_service_insert ON downloads AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY chat_conversations_app_select ON chat_conversations AS PERMISSIVE FOR SELECT TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY chat_conversations_app_insert ON chat_conversations AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY chat_conversations_app_delete ON chat_conversations AS PERMISSIVE FOR DELETE TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY chat_conversations_app_update ON chat_conversations AS PERMISSIVE FOR UPDATE TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
WITH CHECK (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY chat_conversations_service_select ON chat_conversations AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY chat_conversations_service_insert ON chat_conversations AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY chat_conversations_service_update ON chat_conversations AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY chat_conversations_service_delete ON chat_conversations AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY chat_messages_app_select ON chat_messages AS PERMISSIVE FOR SELECT TO afilo_app
USING (EXISTS (SELECT FROM chat_conversations c WHERE c.id = chat_messages.conversation_id AND c.user_id = (SELECT current_user_profile_id())))
""",
    """
CREATE POLICY chat_messages_app_insert ON chat_messages AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (EXISTS (SELECT FROM chat_conversations c WHERE c.id = chat_messages.conversation_id AND c.user_id = (SELECT current_user_profile_id())) AND role = 'user')
""",
    """
CREATE POLICY chat_messages_service_select ON chat_messages AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY chat_messages_service_insert ON chat_messages AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY chat_messages_service_update ON chat_messages AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY chat_messages_service_delete ON chat_messages AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY user_subscriptions_app_select ON user_subscriptions AS PERMISSIVE FOR SELECT TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY user_subscriptions_service_select ON user_subscriptions AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY user_subscriptions_service_insert ON user_subscriptions AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY user_subscriptions_service_update ON user_subscriptions AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY purchases_app_select ON purchases AS PERMISSIVE FOR SELECT TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY purchases_service_select ON purchases AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY purchases_service_insert ON purchases AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY purchases_service_update ON purchases AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY user_activity_log_app_select ON user_activity_log AS PERMISSIVE FOR SELECT TO afilo_app
USING (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY user_activity_log_app_insert ON user_activity_log AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY user_activity_log_service_select ON user_activity_log AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY user_activity_log_service_insert ON user_activity_log AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY bot_analytics_service_select ON bot_analytics AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY bot_analytics_service_insert ON bot_analytics AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY bot_analytics_service_update ON bot_analytics AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY bot_analytics_service_delete ON bot_analytics AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY events_service_select ON events AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY events_service_insert ON events AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY products_app_select ON products AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY products_service_select ON products AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY products_service_insert ON products AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY products_service_update ON products AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY products_service_delete ON products AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_variants_app_select ON product_variants AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_variants_service_select ON product_variants AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_variants_service_insert ON product_variants AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY product_variants_service_update ON product_variants AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY product_variants_service_delete ON product_variants AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_pricing_tiers_app_select ON product_pricing_tiers AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_pricing_tiers_service_select ON product_pricing_tiers AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_pricing_tiers_service_insert ON product_pricing_tiers AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY product_pricing_tiers_service_update ON product_pricing_tiers AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY product_pricing_tiers_service_delete ON product_pricing_tiers AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_collections_app_select ON product_collections AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_collections_service_select ON product_collections AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_collections_service_insert ON product_collections AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY product_collections_service_update ON product_collections AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY product_collections_service_delete ON product_collections AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_collection_products_app_select ON product_collection_products AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_collection_products_service_select ON product_collection_products AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY product_collection_products_service_insert ON product_collection_products AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY product_collection_products_service_update ON product_collection_products AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY product_collection_products_service_delete ON product_collection_products AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
    """
CREATE POLICY knowledge_base_app_select ON knowledge_base AS PERMISSIVE FOR SELECT TO afilo_app
USING (is_published)
""",
    """
CREATE POLICY knowledge_base_service_select ON knowledge_base AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY knowledge_base_service_insert ON knowledge_base AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY knowledge_base_service_update ON knowledge_base AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY knowledge_base_service_delete ON knowledge_base AS PERMISSIVE FOR DELETE TO afilo_service
USING (true)
""",
)

POLICIES_DOWN: tuple[str, ...] = (
    "DROP POLICY user_profiles_app_select ON user_profiles",
    "DROP POLICY user_profiles_app_update ON user_profiles",
    "DROP POLICY user_profiles_service_select ON user_profiles",
    "DROP POLICY user_profiles_service_insert ON user_profiles",
    "DROP POLICY user_profiles_service_update ON user_profiles",
    "DROP POLICY user_profiles_service_delete ON user_profiles",
    "DROP POLICY cart_items_app_select ON cart_items",
    "DROP POLICY cart_items_app_insert ON cart_items",
    "DROP POLICY cart_items_app_delete ON cart_items",
    "DROP POLICY cart_items_app_update ON cart_items",
    "DROP POLICY cart_items_service_select ON cart_items",
    "DROP POLICY cart_items_service_insert ON cart_items",
    "DROP POLICY cart_items_service_update ON cart_items",
    "DROP POLICY cart_items_service_delete ON cart_items",
    "DROP POLICY downloads_app_select ON downloads",
    "DROP POLICY downloads_app_insert ON downloads",
    "DROP POLICY downloads_service_select ON downloads",
    "DROP POLICY downloads_service_insert ON downloads",
    "DROP POLICY chat_conversations_app_select ON chat_conversations",
    "DROP POLICY chat_conversations_app_insert ON chat_conversations",
    "DROP POLICY chat_conversations_app_delete ON chat_conversations",
    "DROP POLICY chat_conversations_app_update ON chat_conversations",
    "DROP POLICY chat_conversations_service_select ON chat_conversations",
    "DROP POLICY chat_conversations_service_insert ON chat_conversations",
    "DROP POLICY chat_conversations_service_update ON chat_conversations",
    "DROP POLICY chat_conversations_service_delete ON chat_conversations",
    "DROP POLICY chat_messages_app_select ON chat_messages",
    "DROP POLICY chat_messages_app_insert ON chat_messages",
    "DROP POLICY chat_messages_service_select ON chat_messages",
    "DROP POLICY chat_messages_service_insert ON chat_messages",
    "DROP POLICY chat_messages_service_update ON chat_messages",
    "DROP POLICY chat_messages_service_delete ON chat_messages",
    "DROP POLICY user_subscriptions_app_select ON user_subscriptions",
    "DROP POLICY user_subscriptions_service_select ON user_subscriptions",
    "DROP POLICY user_subscriptions_service_insert ON user_subscriptions",
    "DROP POLICY user_subscriptions_service_update ON user_subscriptions",
    "DROP POLICY purchases_app_select ON purchases",
    "DROP POLICY purchases_service_select ON purchases",
    "DROP POLICY purchases_service_insert ON purchases",
    "DROP POLICY purchases_service_update ON purchases",
    "DROP POLICY user_activity_log_app_select ON user_activity_log",
    "DROP POLICY user_activity_log_app_insert ON user_activity_log",
    "DROP POLICY user_activity_log_service_select ON user_activity_log",
    "DROP POLICY user_activity_log_service_insert ON user_activity_log",
    "DROP POLICY bot_analytics_service_select ON bot_analytics",
    "DROP POLICY bot_analytics_service_insert ON bot_analytics",
    "DROP POLICY bot_analytics_service_update ON bot_analytics",
    "DROP POLICY bot_analytics_service_delete ON bot_analytics",
    "DROP POLICY events_service_select ON events",
    "DROP POLICY events_service_insert ON events",
    "DROP POLICY products_app_select ON products",
    "DROP POLICY products_service_select ON products",
    "DROP POLICY products_service_insert ON products",
    "DROP POLICY products_service_update ON products",
    "DROP POLICY products_service_delete ON products",
    "DROP POLICY product_variants_app_select ON product_variants",
    "DROP POLICY product_variants_service_select ON product_variants",
    "DROP POLICY product_variants_service_insert ON product_variants",
    "DROP POLICY product_variants_service_update ON product_variants",
    "DROP POLICY product_variants_service_delete ON product_variants",
    "DROP POLICY product_pricing_tiers_app_select ON product_pricing_tiers",
    "DROP POLICY product_pricing_tiers_service_select ON product_pricing_tiers",
    "DROP POLICY product_pricing_tiers_service_insert ON product_pricing_tiers",
    "DROP POLICY product_pricing_tiers_service_update ON product_pricing_tiers",
    "DROP POLICY product_pricing_tiers_service_delete ON product_pricing_tiers",
    "DROP POLICY product_collections_app_select ON product_collections",
    "DROP POLICY product_collections_service_select ON product_collections",
    "DROP POLICY product_collections_service_insert ON product_collections",
    "DROP POLICY product_collections_service_update ON product_collections",
    "DROP POLICY product_collections_service_delete ON product_collections",
    "DROP POLICY product_collection_products_app_select ON product_collection_products",
    "DROP POLICY product_collection_products_service_select ON product_collection_products",
    "DROP POLICY product_collection_products_service_insert ON product_collection_products",
    "DROP POLICY product_collection_products_service_update ON product_collection_products",
    "DROP POLICY product_collection_products_service_delete ON product_collection_products",
    "DROP POLICY knowledge_base_app_select ON knowledge_base",
    "DROP POLICY knowledge_base_service_select ON knowledge_base",
    "DROP POLICY knowledge_base_service_insert ON knowledge_base",
    "DROP POLICY knowledge_base_service_update ON knowledge_base",
    "DROP POLICY knowledge_base_service_delete ON knowledge_base",
    "REVOKE ALL ON user_profiles FROM afilo_app, afilo_service",
    "ALTER TABLE user_profiles NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE user_profiles DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON cart_items FROM afilo_app, afilo_service",
    "ALTER TABLE cart_items NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE cart_items DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON downloads FROM afilo_app, afilo_service",
    "ALTER TABLE downloads NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE downloads DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON chat_conversations FROM afilo_app, afilo_service",
    "ALTER TABLE chat_conversations NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE chat_conversations DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON chat_messages FROM afilo_app, afilo_service",
    "ALTER TABLE chat_messages NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE chat_messages DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON user_subscriptions FROM afilo_app, afilo_service",
    "ALTER TABLE user_subscriptions NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE user_subscriptions DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON purchases FROM afilo_app, afilo_service",
    "ALTER TABLE purchases NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE purchases DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON user_activity_log FROM afilo_app, afilo_service",
    "ALTER TABLE user_activity_log NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE user_activity_log DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON bot_analytics FROM afilo_app, afilo_service",
    "ALTER TABLE bot_analytics NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE bot_analytics DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON events FROM afilo_app, afilo_service",
    "ALTER TABLE events NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE events DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON products FROM afilo_app, afilo_service",
    "ALTER TABLE products NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE products DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON product_variants FROM afilo_app, afilo_service",
    "ALTER TABLE product_variants NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE product_variants DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON product_pricing_tiers FROM afilo_app, afilo_service",
    "ALTER TABLE product_pricing_tiers NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE product_pricing_tiers DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON product_collections FROM afilo_app, afilo_service",
    "ALTER TABLE product_collections NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE product_collections DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON product_collection_products FROM afilo_app, afilo_service",
    "ALTER TABLE product_collection_products NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE product_collection_products DISABLE ROW LEVEL SECURITY",
    "REVOKE ALL ON knowledge_base FROM afilo_app, afilo_service",
    "ALTER TABLE knowledge_base NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE knowledge_base DISABLE ROW LEVEL SECURITY",
    "REVOKE USAGE ON SCHEMA public FROM afilo_app, afilo_service",
    "DROP FUNCTION current_user_profile_id()",
    "DROP FUNCTION current_clerk_user_id()",
)


def upgrade() -> None:
    for statement in ROLES:
        op.execute(statement)
    op.create_index("ix_knowledge_base_is_published", "knowledge_base", ["is_published"])
    for statement in POLICIES_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in POLICIES_DOWN:
        op.execute(statement)
    op.drop_index("ix_knowledge_base_is_published", table_name="knowledge_base")

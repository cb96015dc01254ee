-- expect:
ALTER TYPE ledger_kind ADD VALUE 'refund';

-- expect:
CREATE TABLE product_notes (id bigserial PRIMARY KEY, product_id uuid NOT NULL REFERENCES products (id), body text NOT NULL);
CREATE INDEX ix_product_notes_product_id ON product_notes (product_id);

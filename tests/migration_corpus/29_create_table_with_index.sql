-- expect:
CREATE TABLE product_reviews (id bigint PRIMARY KEY, product_id uuid NOT NULL REFERENCES products (id), rating integer NOT NULL CHECK (rating BETWEEN 1 AND 5));
CREATE INDEX ix_product_reviews_product_id ON product_reviews (product_id);

-- expect: validate-in-same-transaction:error:53
ALTER TABLE knowledge_base ADD CONSTRAINT fk_knowledge_base_product FOREIGN KEY (product_id) REFERENCES products (id) NOT VALID;
ALTER TABLE knowledge_base VALIDATE CONSTRAINT fk_knowledge_base_product;

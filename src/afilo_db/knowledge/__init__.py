"""The machinery behind the chat bot's knowledge base: embedders (the model), chunking
(documents into passages), ingestion (embed what changed, COPY it in), the catalog's sync queue,
re-embedding under another model, and the sample knowledge base of the demo."""

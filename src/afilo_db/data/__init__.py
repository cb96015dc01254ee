"""The data itself: bring a database up, seed it, import the catalog, export and erase a user's data."""

"""The studio: the marketplace's data in the browser (`afilo-db studio`)."""

from afilo_db.studio.app import StudioOptions, create_studio, new_token

__all__ = ["StudioOptions", "create_studio", "new_token"]

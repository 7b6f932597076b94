"""One APIRouter per resource; ``airlock.api.app`` includes them all."""

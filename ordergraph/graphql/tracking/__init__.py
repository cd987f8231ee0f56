"""GraphQL for stage 4: shipments' tracking (``shipments``) and alerts (``alerts``)."""

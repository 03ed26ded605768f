"""The IG review queue: audit events flagged for review, and the reviews IG leads record."""

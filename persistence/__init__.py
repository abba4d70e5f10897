"""Storage for the domain: SQLModel tables, repositories, the unit of work and migrations."""

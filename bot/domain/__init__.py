"""Value objects and pure logic. Nothing in here does I/O or imports anything else of ours."""

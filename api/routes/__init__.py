"""One router per area of the HTTP contract."""

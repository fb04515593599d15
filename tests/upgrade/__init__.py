"""Coming from 4.x: the schema upgrade on real old databases, the 4.x API and behaviours kept."""

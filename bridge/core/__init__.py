"""Pure domain code: no network, no database, no clock. Time comes in as `now`."""

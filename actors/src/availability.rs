//! Which start times are free: opening hours in the business time zone, closures, service
//! durations, buffers, minimum notice, horizon and slot granularity. Pure code, DST-correct.

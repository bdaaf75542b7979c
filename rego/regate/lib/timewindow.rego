# Time windows over `input.time.local`, which regate computes in the configured
# IANA timezone (DST-correct). Clock strings compare lexically: "09:00:00" < "17:00:00".
package regate.lib.timewindow

# True on weekdays in [start, end) local time, e.g. within_hours("09:00:00", "17:00:00").
within_hours(start, end) if {
	start <= input.time.local.clock
	input.time.local.clock < end
}

weekday if not input.time.local.weekday in {"Saturday", "Sunday"}

# Business hours: Monday to Friday, [start, end) local time.
business_hours(start, end) if {
	weekday
	within_hours(start, end)
}

# True while `now` (input.time.now_ns) is before the epoch-seconds instant `exp_s`.
before(exp_s) if input.time.now_ns < exp_s * 1000000000

package regate.lib_test

import data.regate.lib.subject
import data.regate.lib.timewindow

at(clock, weekday) := {"time": {"local": {"clock": clock, "weekday": weekday}}}

test_business_hours_edges if {
	timewindow.business_hours("09:00:00", "17:00:00") with input as at("09:00:00", "Monday")
	timewindow.business_hours("09:00:00", "17:00:00") with input as at("16:59:59", "Friday")
	not timewindow.business_hours("09:00:00", "17:00:00") with input as at("17:00:00", "Monday")
	not timewindow.business_hours("09:00:00", "17:00:00") with input as at("08:59:59", "Monday")
}

test_business_hours_not_on_weekends if {
	not timewindow.business_hours("09:00:00", "17:00:00") with input as at("10:00:00", "Saturday")
	not timewindow.business_hours("09:00:00", "17:00:00") with input as at("10:00:00", "Sunday")
}

test_before if {
	timewindow.before(1700000001) with input as {"time": {"now_ns": 1700000000999999999}}
	not timewindow.before(1700000000) with input as {"time": {"now_ns": 1700000000000000000}}
}

test_scopes if {
	inp := {"subject": {"scopes": ["read", "write"], "roles": ["a"], "groups": ["g"], "tenant": "t1"}}
	subject.has_scope("read") with input as inp
	not subject.has_scope("admin") with input as inp
	subject.has_all_scopes({"read", "write"}) with input as inp
	not subject.has_all_scopes(["read", "admin"]) with input as inp
	subject.has_role("a") with input as inp
	subject.in_group("g") with input as inp
	subject.same_tenant("t1") with input as inp
	not subject.same_tenant("t2") with input as inp
}

test_empty_tenant_never_matches if {
	not subject.same_tenant("") with input as {"subject": {"tenant": ""}}
}

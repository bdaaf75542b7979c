package pii.authz_test

import data.pii.authz

zone := "America/Los_Angeles"

catalog_entry := {"file": "customers-2026-03.parquet", "tags": ["pii:high", "finance"], "owner": "crm-team"}

# A request by `groups` at local `weekday` `clock` in `zone`, on a file with catalog entry `resource`.
req(groups, resource, weekday, clock) := {
	"request": {"params": {"pipeline": "pii-redaction", "file": "customers-2026-03.parquet"}},
	"route": {"id": "start-run", "attributes": {}},
	"subject": {"authenticated": true, "sub": "dana", "groups": groups},
	"resource": resource,
	"time": {"timezone": zone, "local": {"weekday": weekday, "clock": clock}},
}

ok(weekday, clock) := req(["data_engineering"], catalog_entry, weekday, clock)

test_allowed_in_business_hours if {
	d := authz.decision with input as ok("Friday", "09:00:00")
	d == {"allow": true, "reasons": ["dana may run pii-redaction on pii:high file customers-2026-03.parquet at Friday 09:00:00 America/Los_Angeles"]}
}

test_both_edges_of_the_window if {
	not authz.allow with input as ok("Monday", "08:59:59")
	authz.allow with input as ok("Monday", "09:00:00")
	authz.allow with input as ok("Monday", "16:59:59")
	not authz.allow with input as ok("Monday", "17:00:00")
	d := authz.decision with input as ok("Monday", "17:00:00")
	d.reasons == ["runs start only Monday to Friday, 09:00:00 to 17:00:00 America/Los_Angeles (it is Monday 17:00:00)"]
}

test_weekends_denied if {
	not authz.allow with input as ok("Saturday", "10:00:00")
	not authz.allow with input as ok("Sunday", "10:00:00")
}

test_group_required if {
	d := authz.decision with input as req(["analytics"], catalog_entry, "Tuesday", "10:00:00")
	d.reasons == ["dana is not in group data_engineering"]
}

test_tag_required if {
	d := authz.decision with input as req(["data_engineering"], object.union(catalog_entry, {"tags": ["pii:low"]}), "Tuesday", "10:00:00")
	d.reasons == ["file customers-2026-03.parquet is not tagged pii:high"]
	not authz.allow with input as req(["data_engineering"], object.union(catalog_entry, {"tags": "pii:high"}), "Tuesday", "10:00:00")
	not authz.allow with input as req(["data_engineering"], object.remove(catalog_entry, ["tags"]), "Tuesday", "10:00:00")
}

test_no_catalog_entry if {
	d := authz.decision with input as req(["data_engineering"], null, "Tuesday", "10:00:00")
	d.reasons == ["the catalog has no entry for file customers-2026-03.parquet"]
	e := authz.decision with input as object.remove(ok("Tuesday", "10:00:00"), ["resource"])
	e.reasons == ["the catalog has no entry for file customers-2026-03.parquet"]
}

test_wrong_zone_fails_closed if {
	inp := object.union(ok("Tuesday", "10:00:00"), {"time": {"timezone": "UTC"}})
	d := authz.decision with input as inp
	d.reasons == ["business hours are defined in America/Los_Angeles, but regate gives time in UTC"]
}

test_unauthenticated if {
	inp := object.union(ok("Tuesday", "10:00:00"), {"subject": {"authenticated": false, "groups": []}})
	d := authz.decision with input as inp
	d == {"allow": false, "reasons": ["request is not authenticated"]}
}

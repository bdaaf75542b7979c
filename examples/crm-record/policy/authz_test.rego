package crm.authz_test

import data.crm.authz

# 2026-03-10T12:00:00Z, in seconds and nanoseconds.
now_s := 1773144000

grant := {"type": "customer_record", "actions": ["update"], "identifier": "cust-123"}

route(id, type, action, param) := {"id": id, "attributes": {"grant": {"type": type, "action": action, "identifier_param": param}}}

update_route := route("update-customer", "customer_record", "update", "customer")

read_route := route("read-customer", "customer_record", "read", "customer")

delete_route := route("delete-customer", "customer_record", "delete", "customer")

list_route := {"id": "list-customers", "attributes": {"grant": {"type": "customer_record", "action": "list"}}}

orders_route := route("read-customer-orders", "customer_orders", "read", "customer")

req(rt, customer, details) := {
	"request": {"params": {"customer": customer}},
	"route": rt,
	"subject": {"authenticated": true, "sub": "complaint-agent"},
	"token": {"authorization_details": details},
	"time": {"now_ns": now_s * 1000000000},
}

no_params(rt, details) := object.union(req(rt, "", details), {"request": {"params": {}}})

test_update_the_granted_record if {
	d := authz.decision with input as req(update_route, "cust-123", [grant])
	d == {"allow": true, "reasons": ["authorization_details grant: update on customer_record cust-123"]}
}

test_another_record_denied if {
	d := authz.decision with input as req(update_route, "cust-124", [grant])
	d == {"allow": false, "reasons": ["no authorization_details grant covers update on customer_record cust-124"]}
}

test_actions_not_granted_denied if {
	d := authz.decision with input as req(read_route, "cust-123", [grant])
	d.reasons == ["no authorization_details grant covers read on customer_record cust-123"]
	not authz.allow with input as req(delete_route, "cust-123", [grant])
}

test_nothing_else_in_the_crm if {
	not authz.allow with input as no_params(list_route, [grant])
	d := authz.decision with input as no_params(list_route, [grant])
	d.reasons == ["no authorization_details grant covers list on customer_record"]
	not authz.allow with input as req(orders_route, "cust-123", [grant])
}

test_grant_with_expiry_valid_until_it_expires if {
	g := object.union(grant, {"expires_at": now_s + 1})
	authz.allow with input as req(update_route, "cust-123", [g])
}

test_grant_expired_at_its_instant if {
	g := object.union(grant, {"expires_at": now_s})
	d := authz.decision with input as req(update_route, "cust-123", [g])
	d == {"allow": false, "reasons": ["the grant for update on customer_record cust-123 has expired"]}
}

test_malformed_expiry_counts_as_expired if {
	g := object.union(grant, {"expires_at": "tomorrow"})
	not authz.allow with input as req(update_route, "cust-123", [g])
}

test_one_valid_grant_is_enough if {
	old := object.union(grant, {"expires_at": now_s - 60})
	renewed := object.union(grant, {"expires_at": now_s + 600})
	authz.allow with input as req(update_route, "cust-123", [old, renewed])
}

test_no_authorization_details if {
	d := authz.decision with input as req(update_route, "cust-123", [])
	d.reasons == ["the token carries no authorization_details"]
	not authz.allow with input as object.union(req(update_route, "cust-123", []), {"token": {"scope": "crm"}})
}

test_wildcard_grant_is_not_a_grant if {
	not authz.allow with input as req(update_route, "cust-123", [{"type": "customer_record", "actions": ["update"]}])
}

test_unauthenticated_denied if {
	d := authz.decision with input as object.union(req(update_route, "cust-123", [grant]), {"subject": {"authenticated": false}})
	d == {"allow": false, "reasons": ["request is not authenticated"]}
}

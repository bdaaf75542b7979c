package regate.lib.authzdetails_test

import data.regate.lib.authzdetails

record_update := {"type": "customer_record", "actions": ["update"], "identifier": "cust-123"}

token(details) := {"token": {"authorization_details": details}}

test_exact_grant_matches if {
	authzdetails.matches(record_update, {"type": "customer_record", "action": "update", "identifier": "cust-123"})
}

test_other_identifier_does_not_match if {
	not authzdetails.matches(record_update, {"type": "customer_record", "action": "update", "identifier": "cust-124"})
}

test_action_not_granted_does_not_match if {
	not authzdetails.matches(record_update, {"type": "customer_record", "action": "read", "identifier": "cust-123"})
	not authzdetails.matches(record_update, {"type": "customer_record", "action": "delete", "identifier": "cust-123"})
}

test_other_type_does_not_match if {
	not authzdetails.matches(record_update, {"type": "order", "action": "update", "identifier": "cust-123"})
}

test_detail_without_identifier_is_not_a_wildcard if {
	not authzdetails.matches({"type": "customer_record", "actions": ["update"]}, {"type": "customer_record", "action": "update", "identifier": "cust-123"})
}

test_restriction_the_request_cannot_satisfy_fails_closed if {
	# The detail is for one record; a request naming no record (a list call) is not covered.
	not authzdetails.matches(record_update, {"type": "customer_record", "action": "update"})

	# The detail is restricted to a location; a request naming none is not covered.
	not authzdetails.matches(
		{"type": "customer_record", "actions": ["update"], "locations": ["https://crm.example.com"]},
		{"type": "customer_record", "action": "update"},
	)
}

test_every_common_field if {
	detail := {
		"type": "account_information",
		"actions": ["list_accounts", "read_balances"],
		"locations": ["https://example.com/accounts"],
		"datatypes": ["balance"],
		"privileges": ["viewer"],
		"identifier": "acct-1",
	}
	want := {
		"type": "account_information",
		"action": "read_balances",
		"location": "https://example.com/accounts",
		"datatype": "balance",
		"privilege": "viewer",
		"identifier": "acct-1",
	}
	authzdetails.matches(detail, want)
	not authzdetails.matches(detail, object.union(want, {"location": "https://evil.example"}))
	not authzdetails.matches(detail, object.union(want, {"datatype": "transactions"}))
	not authzdetails.matches(detail, object.union(want, {"privilege": "admin"}))
}

test_malformed_details_never_match if {
	not authzdetails.matches("customer_record", {"type": "customer_record"})
	not authzdetails.matches({"type": "customer_record", "actions": "update", "identifier": "cust-123"}, {"type": "customer_record", "action": "update", "identifier": "cust-123"})
	not authzdetails.matches({"type": "customer_record", "identifier": 123}, {"type": "customer_record", "identifier": "123"})
	not authzdetails.matches({"actions": ["update"]}, {"action": "update"})
}

test_details_from_the_token if {
	authzdetails.details == [record_update] with input as token([record_update])
	authzdetails.details == [] with input as {"token": {}}
	authzdetails.details == [] with input as token("customer_record")
}

test_grants_and_granting if {
	other := {"type": "customer_record", "actions": ["read"], "identifier": "cust-9"}
	want := {"type": "customer_record", "action": "update", "identifier": "cust-123"}
	authzdetails.grants(want) with input as token([other, record_update])
	authzdetails.granting(want) == [record_update] with input as token([other, record_update])
	not authzdetails.grants(want) with input as token([other])
	not authzdetails.grants(want) with input as {"token": {}}
}

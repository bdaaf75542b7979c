package sentiment.authz_test

import data.sentiment.authz

req(route, roles) := {
	"route": {"id": route, "attributes": {}},
	"subject": {"authenticated": true, "sub": "alice", "roles": roles},
}

test_data_scientist_may_predict if {
	d := authz.decision with input as req("predict", ["data_scientist"])
	d == {"allow": true, "reasons": ["role data_scientist may call predict"]}
}

test_data_scientist_may_not_read_metadata_or_logs if {
	d := authz.decision with input as req("metadata", ["data_scientist"])
	d == {"allow": false, "reasons": ["none of the roles [data_scientist] may call metadata"]}
	not authz.allow with input as req("logs", ["data_scientist"])
}

test_ml_engineer_may_call_everything if {
	every route in ["predict", "metadata", "logs"] {
		authz.allow with input as req(route, ["ml_engineer"])
	}
}

test_reasons_name_every_granting_role if {
	d := authz.decision with input as req("predict", ["ml_engineer", "data_scientist"])
	d.reasons == ["role data_scientist may call predict", "role ml_engineer may call predict"]
}

test_other_roles_denied if {
	every route in ["predict", "metadata", "logs"] {
		not authz.allow with input as req(route, ["analyst", "viewer"])
	}
	d := authz.decision with input as req("predict", ["viewer", "analyst"])
	d.reasons == ["none of the roles [analyst, viewer] may call predict"]
}

test_no_roles_denied if {
	d := authz.decision with input as req("predict", [])
	d == {"allow": false, "reasons": ["no role may call predict"]}
}

test_unknown_route_denied_even_for_ml_engineer if {
	not authz.allow with input as req("admin", ["ml_engineer"])
}

test_unauthenticated_denied_even_with_roles if {
	d := authz.decision with input as {"route": {"id": "predict"}, "subject": {"authenticated": false, "roles": ["ml_engineer"]}}
	d == {"allow": false, "reasons": ["request is not authenticated"]}
}

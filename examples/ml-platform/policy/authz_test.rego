package mlplatform.authz_test

import data.mlplatform.authz

routes := {
	"read-dataset": {"kind": "datasets", "id_param": "dataset", "action": "read"},
	"read-feature-set": {"kind": "feature_sets", "id_param": "feature_set", "action": "read"},
	"write-feature-set": {"kind": "feature_sets", "id_param": "feature_set", "action": "write"},
	"read-model": {"kind": "models", "id_param": "model", "action": "read"},
	"register-model-version": {"kind": "models", "id_param": "model", "action": "write"},
	"transition-model-version": {"kind": "models", "id_param": "model", "action": "write", "production_when": "target_stage"},
	"update-endpoint": {"kind": "endpoints", "id_param": "endpoint", "action": "write", "production_when": "resource_stage"},
	"invoke-endpoint": {"kind": "endpoints", "id_param": "endpoint", "action": "invoke"},
}

# A request on route `route` with path parameters `params` by `sub` of `tenant` holding `roles`.
req(route, params, sub, tenant, roles) := {
	"request": {"params": params},
	"route": {"id": route, "attributes": routes[route]},
	"subject": {"authenticated": true, "sub": sub, "tenant": tenant, "roles": roles},
}

dataset(tenant, id) := {"tenant": tenant, "dataset": id}

endpoint(tenant, id) := {"tenant": tenant, "endpoint": id}

transition(tenant, model, stage) := {"tenant": tenant, "model": model, "version": "7", "stage": stage}

decision(route, params, sub, tenant, roles) := d if {
	d := authz.decision with input as req(route, params, sub, tenant, roles)
}

# --- allowed

test_member_reads_internal_dataset if {
	d := decision("read-dataset", dataset("retail", "churn-events"), "bob", "retail", [])
	d == {"allow": true, "reasons": ["bob is viewer in project churn"]}
}

test_contributor_reads_confidential_and_writes_features if {
	decision("read-dataset", dataset("retail", "churn-labels"), "alice", "retail", []).allow
	decision("write-feature-set", {"tenant": "retail", "feature_set": "customer-activity"}, "alice", "retail", []).allow
	decision("register-model-version", {"tenant": "retail", "model": "churn-xgb"}, "alice", "retail", []).allow
}

test_owner_reads_restricted if {
	decision("read-dataset", dataset("retail", "customer-pii"), "olga", "retail", []).allow
}

test_contributor_moves_a_version_to_staging_and_changes_staging_endpoint if {
	decision("transition-model-version", transition("retail", "churn-xgb", "staging"), "alice", "retail", []).allow
	decision("update-endpoint", endpoint("retail", "churn-scoring-canary"), "alice", "retail", []).allow
}

test_release_role_changes_production if {
	d := decision("transition-model-version", transition("retail", "churn-xgb", "production"), "erin", "retail", ["release"])
	d == {"allow": true, "reasons": ["erin is contributor in project churn", "the release role may change production"]}
	decision("update-endpoint", endpoint("retail", "churn-scoring"), "erin", "retail", ["release"]).allow
}

test_viewer_invokes_production_endpoint if {
	decision("invoke-endpoint", endpoint("retail", "churn-scoring"), "bob", "retail", []).allow
}

test_tenant_admin_browses_own_tenant if {
	d := decision("read-dataset", dataset("retail", "clickstream"), "tara", "retail", ["tenant_admin"])
	d == {"allow": true, "reasons": ["tara is viewer in project recsys"]}
	decision("read-model", {"tenant": "retail", "model": "churn-xgb"}, "tara", "retail", ["tenant_admin"]).allow
}

# --- tenant isolation

test_tenant_isolation_for_members if {
	d := decision("read-dataset", dataset("payments", "chargebacks"), "alice", "retail", [])
	d == {"allow": false, "reasons": ["tenant isolation: a retail token may not access tenant payments"]}
}

test_tenant_isolation_even_for_admins_and_release if {
	d := decision("read-dataset", dataset("payments", "chargebacks"), "tara", "retail", ["tenant_admin", "release"])
	d.reasons == ["tenant isolation: a retail token may not access tenant payments"]
	not authz.allow with input as req("update-endpoint", endpoint("payments", "fraud-scoring"), "tara", "retail", ["tenant_admin", "release"])
}

test_tenant_isolation_even_when_listed_as_member_elsewhere if {
	# frank owns payments/fraud; with a retail token he is a retail user.
	not authz.allow with input as req("read-dataset", dataset("payments", "chargebacks"), "frank", "retail", [])
}

test_token_without_tenant if {
	d := decision("read-dataset", dataset("retail", "churn-events"), "alice", "", [])
	d.reasons == ["the token names no tenant"]
}

# --- resources and membership

test_unknown_resource if {
	d := decision("read-dataset", dataset("retail", "does-not-exist"), "alice", "retail", [])
	d.reasons == ["no dataset does-not-exist in tenant retail"]
}

test_non_member if {
	d := decision("read-dataset", dataset("retail", "clickstream"), "alice", "retail", [])
	d.reasons == ["alice is not a member of project recsys"]
}

# --- sensitivity and action

test_viewer_may_not_write if {
	d := decision("write-feature-set", {"tenant": "retail", "feature_set": "customer-activity"}, "bob", "retail", [])
	d.reasons == ["write on feature set customer-activity (internal) needs project role contributor; bob is viewer"]
}

test_sensitivity if {
	d := decision("read-dataset", dataset("retail", "churn-labels"), "bob", "retail", [])
	d.reasons == ["read on dataset churn-labels (confidential) needs project role contributor; bob is viewer"]
	e := decision("read-dataset", dataset("retail", "customer-pii"), "alice", "retail", [])
	e.reasons == ["read on dataset customer-pii (restricted) needs project role owner; alice is contributor"]
}

test_tenant_admin_never_reads_sensitive_data if {
	not authz.allow with input as req("read-dataset", dataset("retail", "customer-pii"), "tara", "retail", ["tenant_admin"])
	not authz.allow with input as req("read-dataset", dataset("retail", "churn-labels"), "tara", "retail", ["tenant_admin"])
	not authz.allow with input as req("write-feature-set", {"tenant": "retail", "feature_set": "customer-activity"}, "tara", "retail", ["tenant_admin"])
}

# --- operational context

test_production_needs_release if {
	d := decision("transition-model-version", transition("retail", "churn-xgb", "production"), "alice", "retail", [])
	d.reasons == ["changing production (model churn-xgb) needs the release role"]
	e := decision("update-endpoint", endpoint("retail", "churn-scoring"), "olga", "retail", ["tenant_admin"])
	e.reasons == ["changing production (endpoint churn-scoring) needs the release role"]
}

test_release_role_does_not_replace_membership if {
	d := decision("update-endpoint", endpoint("retail", "churn-scoring"), "rita", "retail", ["release"])
	d.reasons == ["rita is not a member of project churn"]
	e := decision("transition-model-version", transition("retail", "churn-xgb", "production"), "bob", "retail", ["release"])
	e.reasons == ["write on model churn-xgb (internal) needs project role contributor; bob is viewer"]
}

test_unknown_stage if {
	d := decision("transition-model-version", transition("retail", "churn-xgb", "archived"), "erin", "retail", ["release"])
	d.reasons == ["unknown stage archived (staging or production)"]
}

test_unauthenticated if {
	d := authz.decision with input as {"request": {"params": dataset("retail", "churn-events")}, "route": {"id": "read-dataset", "attributes": routes["read-dataset"]}, "subject": {"authenticated": false, "tenant": "", "roles": []}}
	d == {"allow": false, "reasons": ["request is not authenticated"]}
}

test_route_without_attributes_denied if {
	not authz.allow with input as {"request": {"params": {"tenant": "retail"}}, "route": {"id": "new-route", "attributes": {}}, "subject": {"authenticated": true, "sub": "olga", "tenant": "retail", "roles": ["tenant_admin", "release"]}}
}

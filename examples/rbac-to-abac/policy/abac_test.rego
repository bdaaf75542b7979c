package reports.abac_test

import data.reports.abac

req(route, classification, roles, tenant, path_tenant, token) := {
	"route": {"id": route, "attributes": {"classification": classification}},
	"subject": {"authenticated": true, "roles": roles, "tenant": tenant},
	"request": {"params": {"tenant": path_tenant}},
	"token": token,
}

test_same_tenant_internal_allowed if {
	abac.decision.allow with input as req("read-report", "internal", ["analyst"], "acme", "acme", {})
}

test_roles_still_required if {
	d := abac.decision with input as req("update-report", "internal", ["analyst"], "acme", "acme", {})
	d.reasons == ["none of the roles [analyst] may call update-report"]
}

test_other_tenant_denied if {
	d := abac.decision with input as req("read-report", "internal", ["analyst"], "acme", "globex", {})
	d.reasons == ["tenant isolation: a acme token may not access tenant globex"]
}

test_confidential_needs_clearance if {
	d := abac.decision with input as req("read-customer", "confidential", ["account_manager"], "acme", "acme", {})
	d.reasons == ["confidential data needs clearance confidential; the caller has internal"]
	abac.decision.allow with input as req("read-customer", "confidential", ["account_manager"], "acme", "acme", {"clearance": "confidential"})
}

test_restricted_needs_restricted if {
	not abac.allow with input as req("export-customers", "restricted", ["data_steward"], "acme", "acme", {"clearance": "confidential"})
	abac.allow with input as req("export-customers", "restricted", ["data_steward"], "acme", "acme", {"clearance": "restricted"})
}

test_unknown_clearance_denied if {
	not abac.allow with input as req("read-report", "internal", ["analyst"], "acme", "acme", {"clearance": "top-secret"})
}

package reports.rbac_test

import data.reports.rbac

req(route, roles, tenant, path_tenant) := {
	"route": {"id": route, "attributes": {}},
	"subject": {"authenticated": true, "roles": roles, "tenant": tenant},
	"request": {"params": {"tenant": path_tenant}},
	"token": {},
}

test_analyst_reads_reports if {
	rbac.decision.allow with input as req("read-report", ["analyst"], "acme", "acme")
}

test_analyst_may_not_update if {
	d := rbac.decision with input as req("update-report", ["analyst"], "acme", "acme")
	not d.allow
	d.reasons == ["none of the roles [analyst] may call update-report"]
}

# What the migration is about: RBAC does not look at the tenant.
test_rbac_ignores_the_tenant if {
	rbac.decision.allow with input as req("read-report", ["analyst"], "acme", "globex")
}

test_no_roles_denied if {
	not rbac.allow with input as req("read-report", [], "acme", "acme")
}

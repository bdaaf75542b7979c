# ml-platform: least privilege on a multi-tenant ML platform.
#
# A request is allowed only when ALL of these hold, checked in this order
# (the first that fails is the deny reason):
#
# 1. Tenant isolation. The caller's `tenant` claim equals the tenant in the
#    path. No role overrides it — not `tenant_admin`, not `release`.
# 2. The resource exists in that tenant (data.json); unknown means denied.
# 3. Project membership. The caller's role in the resource's project
#    (data.json `members`); a `tenant_admin` counts as a viewer in every
#    project of their own tenant.
# 4. Sensitivity and action. The caller's project role must reach both the
#    action's rank (read/invoke: viewer, write: contributor) and the
#    resource's sensitivity rank (internal: viewer, confidential: contributor,
#    restricted: owner). So a tenant admin browses, but never reads
#    confidential or restricted data.
# 5. Operational context. A request that changes production — moving a model
#    version to the production stage, or changing an endpoint whose stage is
#    production — also needs the `release` role in the token.
package mlplatform.authz

import data.mlplatform.tenants

role_rank := {"viewer": 1, "contributor": 2, "owner": 3}

role_name := {rank: name | some name, rank in role_rank}

action_rank := {"read": 1, "invoke": 1, "write": 2}

sensitivity_rank := {"public": 1, "internal": 1, "confidential": 2, "restricted": 3}

kind_name := {"datasets": "dataset", "feature_sets": "feature set", "models": "model", "endpoints": "endpoint"}

model_stages := {"staging", "production"}

attrs := input.route.attributes

tenant_id := input.request.params.tenant

resource_id := input.request.params[attrs.id_param]

# What the request touches, from the bundle's data.
resource := tenants[tenant_id][attrs.kind][resource_id]

project_members := tenants[tenant_id].projects[resource.project].members

sensitivity := object.get(resource, "sensitivity", "internal")

# "dataset customer-pii"
what := sprintf("%s %s", [kind_name[attrs.kind], resource_id])

# 1. Tenant isolation.
same_tenant if {
	input.subject.tenant != ""
	input.subject.tenant == tenant_id
}

# 3. The caller's rank in the resource's project: membership, or viewer for a tenant admin.
caller_ranks contains role_rank[project_members[input.subject.sub]]

caller_ranks contains role_rank.viewer if "tenant_admin" in input.subject.roles

caller_rank := max(caller_ranks) if count(caller_ranks) > 0

# 4. The rank this request needs.
required_rank := max({action_rank[attrs.action], sensitivity_rank[sensitivity]})

# 5. Does this request change what production serves?
changes_production if {
	attrs.production_when == "target_stage"
	input.request.params.stage == "production"
}

changes_production if {
	attrs.production_when == "resource_stage"
	resource.stage == "production"
}

# A stage transition names a known stage.
stage_known if not attrs.production_when == "target_stage"

stage_known if input.request.params.stage in model_stages

release_ok if not changes_production

release_ok if "release" in input.subject.roles

default allow := false

allow if {
	input.subject.authenticated
	same_tenant
	resource
	stage_known
	caller_rank >= required_rank
	release_ok
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": [member_reason]} if {
	allow
	not changes_production
}

decision := {"allow": true, "reasons": [member_reason, "the release role may change production"]} if {
	allow
	changes_production
}

decision := {"allow": false, "reasons": [deny_reason]} if not allow

member_reason := sprintf("%s is %s in project %s", [input.subject.sub, role_name[caller_rank], resource.project])

deny_reason := "request is not authenticated" if {
	not input.subject.authenticated
} else := "the token names no tenant" if {
	input.subject.tenant == ""
} else := sprintf("tenant isolation: a %s token may not access tenant %s", [input.subject.tenant, tenant_id]) if {
	not same_tenant
} else := sprintf("no %s %s in tenant %s", [kind_name[attrs.kind], resource_id, tenant_id]) if {
	not resource
} else := sprintf("unknown stage %s (staging or production)", [input.request.params.stage]) if {
	not stage_known
} else := sprintf("%s is not a member of project %s", [input.subject.sub, resource.project]) if {
	not caller_rank
} else := sprintf("%s on %s (%s) needs project role %s; %s is %s", [attrs.action, what, sensitivity, role_name[required_rank], input.subject.sub, role_name[caller_rank]]) if {
	caller_rank < required_rank
} else := sprintf("changing production (%s) needs the release role", [what]) if {
	not release_ok
}

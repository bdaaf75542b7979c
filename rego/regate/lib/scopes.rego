# Helpers over the verified subject regate puts in `input.subject`.
package regate.lib.subject

# True when the caller's token grants scope `s`.
has_scope(s) if s in input.subject.scopes

# True when the caller holds every scope in the set or array `required`.
has_all_scopes(required) if every s in required {
	s in input.subject.scopes
}

# True when the caller holds role `r`.
has_role(r) if r in input.subject.roles

# True when the caller is in group `g`.
in_group(g) if g in input.subject.groups

# True when the caller's tenant is `t` (and the caller has a tenant at all).
same_tenant(t) if {
	input.subject.tenant != ""
	input.subject.tenant == t
}

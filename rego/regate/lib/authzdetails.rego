# RFC 9396 (OAuth 2.0 Rich Authorization Requests): does the verified token's
# `authorization_details` claim grant this request?
#
# A request is described as one object, in the singular forms of the common
# fields of RFC 9396 §2.2:
#
#   {"type": "customer_record", "action": "update", "identifier": "cust-123"}
#
# optional keys: action, location, datatype, privilege, identifier.
#
# A detail grants it when its `type` is equal and, for every common field, the
# detail restricts the field exactly when the request names it, and covers the
# request's value (`actions`, `locations`, `datatypes`, `privileges` contain it;
# `identifier` is equal). Both directions fail closed: a detail with no
# `identifier` is not a grant for "every record", and a detail restricted to
# `locations` does not match a request that names no location. Type-specific
# fields (RFC 9396 §2) are the caller's to check on the detail it gets back.
package regate.lib.authzdetails

# The token's authorization_details; [] when absent or not an array.
details := d if {
	d := input.token.authorization_details
	is_array(d)
} else := []

# Request field → the detail field (an array) that must contain its value.
list_fields := {
	"action": "actions",
	"location": "locations",
	"datatype": "datatypes",
	"privilege": "privileges",
}

# True when `detail` grants the request `want` (see the package comment).
matches(detail, want) if {
	is_object(detail)
	is_string(want.type)
	detail.type == want.type
	every one, many in list_fields {
		list_covered(detail, want, one, many)
	}
	identifier_covered(detail, want)
}

# Every detail of the token that grants `want`.
granting(want) := [d | some d in details; matches(d, want)]

# True when some detail of the token grants `want`.
grants(want) if {
	some d in details
	matches(d, want)
}

list_covered(detail, want, one, many) if {
	not has(want, one)
	not has(detail, many)
}

list_covered(detail, want, one, many) if {
	is_array(detail[many])
	want[one] in detail[many]
}

identifier_covered(detail, want) if {
	not has(want, "identifier")
	not has(detail, "identifier")
}

identifier_covered(detail, want) if {
	is_string(want.identifier)
	detail.identifier == want.identifier
}

# `key in object.keys(obj)`, not `obj[key]`: a field set to false or null is still present.
has(obj, key) if key in object.keys(obj)

# pii-pipeline: who may start a pipeline run on a file holding high-risk PII.
#
# POST /v1/pipelines/{pipeline}/files/{file}/runs is allowed only when all hold:
#
#   1. the caller is in group data_engineering;
#   2. the metadata catalog tags the file `pii:high` — regate fetches the
#      file's catalog entry into `input.resource` (route `resource` in
#      ../regate.yaml) before the policy runs;
#   3. it is business hours in Los Angeles: Monday to Friday, from 09:00:00
#      up to (not including) 17:00:00 local time, daylight saving time
#      included — regate computes `input.time.local` in the configured zone.
#
# The policy also checks that zone: if the config's timezone were changed,
# "09:00" would silently mean another instant, so it denies instead.
package pii.authz

import data.regate.lib.subject
import data.regate.lib.timewindow

required_group := "data_engineering"

required_tag := "pii:high"

business_zone := "America/Los_Angeles"

opens := "09:00:00"

closes := "17:00:00"

# Helper rule rather than `not is_object(input.resource)`: OPA evaluates a
# call's arguments before the `not`, so with no resource at all that
# expression would be undefined instead of true.
has_catalog_entry if is_object(input.resource)

tagged if {
	is_array(input.resource.tags)
	required_tag in input.resource.tags
}

in_business_hours if {
	input.time.timezone == business_zone
	timewindow.business_hours(opens, closes)
}

default allow := false

allow if {
	input.subject.authenticated
	subject.in_group(required_group)
	tagged
	in_business_hours
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": [sprintf("%s may run %s on %s file %s at %s %s %s", [
	input.subject.sub,
	input.request.params.pipeline,
	required_tag,
	input.request.params.file,
	input.time.local.weekday,
	input.time.local.clock,
	business_zone,
])]} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

deny_reason := "request is not authenticated" if {
	not input.subject.authenticated
} else := sprintf("%s is not in group %s", [input.subject.sub, required_group]) if {
	not subject.in_group(required_group)
} else := sprintf("the catalog has no entry for file %s", [input.request.params.file]) if {
	not has_catalog_entry
} else := sprintf("file %s is not tagged %s", [input.request.params.file, required_tag]) if {
	not tagged
} else := sprintf("business hours are defined in %s, but regate gives time in %s", [business_zone, input.time.timezone]) if {
	input.time.timezone != business_zone
} else := sprintf("runs start only Monday to Friday, %s to %s %s (it is %s %s)", [
	opens,
	closes,
	business_zone,
	input.time.local.weekday,
	input.time.local.clock,
])

"""admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration and MutatingWebhookConfiguration (cluster-scoped),
with Kubernetes v1's defaults (``pkg/apis/admissionregistration/v1/defaults.go``). The API server calls the webhooks
(``master/apiserver/webhooks.py``); their validation lives in ``bus.webhook_validation``."""

from __future__ import annotations

from pydantic import Field

from bus.models.base import Int, K8sModel, O
from bus.models.meta import LabelSelector, TopLevel

FAIL, IGNORE = "Fail", "Ignore"
FAILURE_POLICIES = (FAIL, IGNORE)
EXACT, EQUIVALENT = "Exact", "Equivalent"
MATCH_POLICIES = (EQUIVALENT, EXACT)
SIDE_EFFECTS = ("None", "NoneOnDryRun")  # the classes v1 accepts (Unknown and Some were v1beta1's)
NEVER, IF_NEEDED = "Never", "IfNeeded"
REINVOCATION_POLICIES = (IF_NEEDED, NEVER)
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
SCOPES = ("*", "Cluster", "Namespaced")
REVIEW_VERSIONS = ("v1",)  # the AdmissionReview versions k8n sends
DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 30


class ServiceReference(K8sModel):
    namespace: O[str] = None
    name: O[str] = None
    path: O[str] = None
    port: O[Int] = 443


class WebhookClientConfig(K8sModel):
    url: O[str] = None
    service: O[ServiceReference] = None
    ca_bundle: O[str] = None  # base64 PEM


class RuleWithOperations(K8sModel):
    operations: O[list[str]] = None
    api_groups: O[list[str]] = None
    api_versions: O[list[str]] = None
    resources: O[list[str]] = None
    scope: O[str] = "*"


class ValidatingWebhook(K8sModel):
    name: O[str] = None
    client_config: O[WebhookClientConfig] = None
    rules: O[list[RuleWithOperations]] = None
    failure_policy: O[str] = FAIL
    match_policy: O[str] = EQUIVALENT
    namespace_selector: O[LabelSelector] = Field(default_factory=LabelSelector)
    object_selector: O[LabelSelector] = Field(default_factory=LabelSelector)
    side_effects: O[str] = None
    timeout_seconds: O[Int] = DEFAULT_TIMEOUT
    admission_review_versions: O[list[str]] = None
    # matchConditions (CEL) are not modelled: kept, returned with a warning, not evaluated


class MutatingWebhook(ValidatingWebhook):
    reinvocation_policy: O[str] = NEVER


class ValidatingWebhookConfiguration(TopLevel):
    api_version: O[str] = "admissionregistration.k8s.io/v1"
    kind: O[str] = "ValidatingWebhookConfiguration"
    webhooks: O[list[ValidatingWebhook]] = None


class MutatingWebhookConfiguration(TopLevel):
    api_version: O[str] = "admissionregistration.k8s.io/v1"
    kind: O[str] = "MutatingWebhookConfiguration"
    webhooks: O[list[MutatingWebhook]] = None

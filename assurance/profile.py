"""The organisation's part of a pack: what only the firm, trust or public body can state.

Measurements come from the ledger; this profile carries everything else a
regulator's reader looks for (intended use, accountable people, impact
assessments, the model inventory entry). It is a YAML file named by the plan's
``report.profile``; its digest and content are recorded in the ledger so a pack
can be re-rendered from the ledger alone.

Every field is optional: a pack prints a missing field the regime needs as a red
"NOT PROVIDED: required by …" row (the requirement maps say which regime needs
which field), never as a placeholder that looks filled in. Field paths used by the
requirement maps are dotted (``roles.clinical_safety_officer``); ``profile_value``
reads one and ``PROFILE_FIELDS`` lists them all.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SeverityName = Literal["Minor", "Significant", "Considerable", "Major", "Catastrophic"]
"""DCB0129 severity bands."""
LikelihoodName = Literal["Very low", "Low", "Medium", "High", "Very high"]
"""DCB0129 likelihood bands."""


class _Part(BaseModel):
    # Unknown keys are errors (a misspelt field must not vanish silently); every field documented.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class Person(_Part):
    """A named person in a role."""

    name: str = Field(min_length=1, title="Name")
    """Full name as it should appear in the pack."""
    title: str | None = Field(None, title="Job title")
    """Job title or function (e.g. "Head of Model Risk")."""
    contact: str | None = Field(None, title="Contact")
    """E-mail address or other contact route."""


class SeniorManager(Person):
    """An SM&CR Senior Management Function holder."""

    smf: str = Field(min_length=1, title="SMF")
    """The Senior Management Function held, e.g. "SMF24" (Chief Operations) or "SMF4" (Chief Risk)."""


class Registration(_Part):
    """A professional registration (GMC, NMC, HCPC, GPhC...)."""

    body: str = Field(min_length=1, title="Registering body")
    """The regulator holding the register, e.g. "GMC", "NMC", "HCPC"."""
    number: str = Field(min_length=1, title="Registration number")
    """The person's number on that register."""


class ClinicalSafetyOfficer(Person):
    """The Clinical Safety Officer: a suitably qualified and experienced registered clinician (DCB0129/0160)."""

    registration: Registration = Field(title="Professional registration")
    """Their professional registration; a CSO must be a registered clinician."""


class Validator(Person):
    """The person or function who validated the model (SS1/23 principle 4)."""

    independent: bool = Field(title="Independent of development")
    """Whether the validator is independent of the model's development (SS1/23 requires it)."""


class Document(_Part):
    """A reference to a document the organisation keeps (an impact assessment, a plan)."""

    reference: str = Field(min_length=1, title="Reference")
    """The document's id or location in the organisation's records."""
    version: str | None = Field(None, title="Version")
    """Its version."""
    approved_on: date | None = Field(None, title="Approved on")
    """When it was approved."""
    status: Literal["draft", "approved", "under review", "not required"] = Field("approved", title="Status")
    """Its status; ``not required`` with a reference to the screening decision where none applies."""


class Supplier(_Part):
    """A third party whose model or service the system uses."""

    name: str = Field(min_length=1, title="Supplier")
    """Who supplies it."""
    model: str | None = Field(None, title="Model")
    """The model or product supplied (the base model's name and version)."""
    licence: str | None = Field(None, title="Licence")
    """The licence it is used under."""
    due_diligence: str | None = Field(None, title="Due diligence")
    """Reference to the firm's third-party / supplier assessment."""


class Organisation(_Part):
    """The legal entity responsible for the system."""

    legal_name: str | None = Field(None, title="Legal entity")
    """The legal entity's registered name."""
    registration: str | None = Field(None, title="Registration")
    """Its register entry: FCA firm reference number, Companies House number or ODS code."""
    contact: str | None = Field(None, title="Contact")
    """A contact route for questions about the system (public for ATRS)."""


class System(_Part):
    """The AI system the model serves, and how it is used."""

    name: str | None = Field(None, title="System name")
    """The system's name."""
    intended_use: str | None = Field(None, title="Intended use")
    """What the system is for, in plain words."""
    users: str | None = Field(None, title="Users")
    """Who uses it (staff, customers, patients, the public)."""
    affected_people: str | None = Field(None, title="Affected people")
    """Who is affected by its outputs, including people in vulnerable circumstances."""
    deployment_context: str | None = Field(None, title="Deployment context")
    """Where and how it runs: channel, workflow, volumes."""
    out_of_scope: list[str] | None = Field(None, title="Out-of-scope uses")
    """Uses it must not be put to."""
    human_oversight: str | None = Field(None, title="Human oversight")
    """How people oversee its outputs, and can intervene or override."""
    benefits: str | None = Field(None, title="Benefits and rationale")
    """Why it is used, and the alternatives considered (ATRS)."""
    phase: Literal["idea", "design", "development", "pilot", "production", "retired"] | None = Field(
        None, title="Phase")
    """Life-cycle phase (ATRS)."""
    change_management: str | None = Field(None, title="Change management")
    """How changes to the model or its use are approved and re-assessed."""
    monitoring: str | None = Field(None, title="Monitoring in use")
    """How performance and harms are monitored in live use, and the revalidation cycle."""
    contestability: str | None = Field(None, title="Contest and redress route")
    """How a person affected by an output can challenge it and obtain redress."""


class ModelRisk(_Part):
    """The model's entry in the firm's model inventory (SS1/23 principle 1)."""

    inventory_id: str | None = Field(None, title="Model inventory id")
    """Its id in the model inventory."""
    risk_tier: str | None = Field(None, title="Model risk tier")
    """Its model risk tier under the firm's tiering."""
    tiering_rationale: str | None = Field(None, title="Tiering rationale")
    """Why that tier (materiality and complexity)."""
    base_model: Supplier | None = Field(None, title="Third-party base model")
    """Where the base model came from (SS1/23 third-party models; ATRS supplier)."""


class Roles(_Part):
    """Named people in their roles; each regime needs its own."""

    model_owner: Person | None = Field(None, title="Model owner")
    """Accountable for the model's use and performance (SS1/23 principle 2)."""
    model_developer: Person | None = Field(None, title="Model developer")
    """Who developed or fine-tuned the model."""
    validator: Validator | None = Field(None, title="Model validator")
    """Who validated it (SS1/23 principle 4)."""
    accountable_smf: SeniorManager | None = Field(None, title="Accountable SMF")
    """The Senior Manager accountable for model risk management (SS1/23 2.2; SM&CR)."""
    manufacturer: str | None = Field(None, title="Manufacturer")
    """The health IT manufacturer (DCB0129)."""
    deploying_organisation: str | None = Field(None, title="Deploying organisation")
    """The health or care organisation deploying it (DCB0160)."""
    clinical_safety_officer: ClinicalSafetyOfficer | None = Field(None, title="Clinical Safety Officer")
    """The CSO who owns the hazard log and safety case."""
    senior_responsible_owner: Person | None = Field(None, title="Senior responsible owner")
    """The SRO accountable for the tool (ATRS)."""
    team: str | None = Field(None, title="Responsible team")
    """The team running the tool (ATRS)."""
    document_author: Person | None = Field(None, title="Document author")
    """Who prepared this pack for review."""
    reviewers: list[Person] | None = Field(None, title="Reviewers")
    """Who reviews this pack before sign-off."""


class Clinical(_Part):
    """The clinical safety standards' questions (NHS)."""

    dcb0129_applies: bool | None = Field(None, title="DCB0129 applies")
    """Whether the organisation is the manufacturer of health IT under DCB0129."""
    dcb0160_applies: bool | None = Field(None, title="DCB0160 applies")
    """Whether the organisation deploys the system in health or care under DCB0160."""
    mhra_device_status: str | None = Field(None, title="MHRA device status")
    """Whether the software is a medical device, and its class (e.g. "not a medical device: …")."""
    clinical_context: str | None = Field(None, title="Clinical context")
    """The clinical setting and pathway the system is used in."""


class Assessments(_Part):
    """The organisation's impact assessments and plans."""

    dpia: Document | None = Field(None, title="DPIA")
    """Data protection impact assessment (UK GDPR Art. 35)."""
    eqia: Document | None = Field(None, title="EqIA")
    """Equality impact assessment (public sector equality duty)."""
    clinical_risk_management_plan: Document | None = Field(None, title="Clinical risk management plan")
    """DCB0129/0160 clinical risk management plan."""
    security: Document | None = Field(None, title="Security assessment")
    """Technical security assessment (DTAC C3), e.g. a penetration test."""


class Transparency(_Part):
    """Algorithmic Transparency Recording Standard (public bodies)."""

    atrs_tier: Literal["tier 1", "tier 1 and 2"] | None = Field(None, title="ATRS record published")
    """Which ATRS tiers are (to be) published."""
    public_summary: str | None = Field(None, title="Public summary")
    """ATRS tier 1: a short plain-English description for the public."""
    website: str | None = Field(None, title="More information (web page)")
    """ATRS tier 1: the web page where the public can find out more about the tool."""


class HazardAssessment(_Part):
    """The Clinical Safety Officer's assessment of one hazard the run derived (keyed by hazard key)."""

    severity: SeverityName | None = Field(None, title="Severity")
    """Severity of the harm if it happens; without it, ratings read "pending CSO"."""
    residual_severity: SeverityName | None = Field(None, title="Residual severity")
    """Severity after controls, where a control reduces severity (default: the initial severity)."""
    owner: str | None = Field(None, title="Owner")
    """Who owns the hazard (default: the Clinical Safety Officer)."""
    status: Literal["open", "closed", "transferred"] | None = Field(None, title="Status")
    """Hazard status in the log (default: open)."""
    note: str | None = Field(None, title="CSO note")
    """The CSO's justification or further controls."""


class OrgProfile(_Part):
    """An organisation profile (``report.profile``): what only the organisation can supply."""

    organisation: Organisation = Field(default_factory=Organisation)
    """The legal entity."""
    system: System = Field(default_factory=System)
    """The system and its use."""
    model_risk: ModelRisk = Field(default_factory=ModelRisk)
    """Model inventory entry and base-model provenance."""
    roles: Roles = Field(default_factory=Roles)
    """Named people in their roles."""
    clinical: Clinical = Field(default_factory=Clinical)
    """Clinical safety standards (NHS)."""
    assessments: Assessments = Field(default_factory=Assessments)
    """Impact assessments and plans."""
    transparency: Transparency = Field(default_factory=Transparency)
    """ATRS (public bodies)."""
    hazards: dict[str, HazardAssessment] = Field(default_factory=dict)
    """The CSO's assessment per hazard key (as the hazard log prints it, e.g. ``over-refusal``)."""


def _leaves(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if name == "hazards":
            continue  # keyed by hazard, read by the hazard log
        ann = info.annotation
        sub = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, _Part)),
                   None)
        # A section (organisation, roles...) is walked; a person or document is one field.
        if sub is not None and prefix == "":
            out.update(_leaves(sub, f"{path}."))
        else:
            out[path] = info.title or name
    return out


PROFILE_FIELDS: dict[str, str] = _leaves(OrgProfile)
"""Every field a requirement map may name: dotted path -> the label a pack prints."""


def profile_value(profile: OrgProfile | None, path: str) -> Any:
    """The value at a dotted ``path``, or None when the profile (or the field) is absent or empty."""
    if path not in PROFILE_FIELDS:
        raise KeyError(f"unknown profile field {path!r}")
    value: Any = profile
    for part in path.split("."):
        if value is None:
            return None
        value = getattr(value, part)
    if value in ("", []):
        return None
    return value

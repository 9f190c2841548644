"""Action ssm_parameter: the active region as the value of an SSM String parameter."""

from __future__ import annotations

from typing import Any

from ddb_failover.config import SSMParameterAction
from responder.actions.aws_client import translated
from responder.actions.base import Action, Json, Transition
from responder.actions.inspection import MISSING, Limits, Problem
from responder.model import fence


class SSMParameter(Action):
    """Puts the region into an SSM parameter (String, overwritten)."""

    type = "ssm_parameter"

    def __init__(self, config: SSMParameterAction, client: Any) -> None:
        super().__init__(config.name)
        self.parameter = config.parameter
        self.client = client

    def current(self) -> Json:
        """The parameter's value; None when the parameter does not exist."""
        with translated(f"{self.name}: get_parameter {self.parameter}"):
            try:
                response = self.client.get_parameter(Name=self.parameter)
            except self.client.exceptions.ParameterNotFound:
                return None
        return response["Parameter"]["Value"]

    def desired(self, region: str) -> Json:
        """The region name itself."""
        return region

    def examine(self, region: str, desired: Json, limits: Limits, problems: list[Problem]) -> Json:
        """Also: the parameter exists (the application reads it)."""
        current = self.current()
        if current is None:
            problems.append(
                Problem(MISSING, f"{self.name}: SSM parameter {self.parameter} does not exist")
            )
        return current

    def apply(self, desired: Json, transition: Transition) -> None:
        """Overwrite the parameter with the region."""
        fence.check(f"{self.name}: put_parameter {self.parameter}")
        with translated(f"{self.name}: put_parameter {self.parameter}"):
            self.client.put_parameter(
                Name=self.parameter,
                Value=str(desired),
                Type="String",
                Overwrite=True,
            )

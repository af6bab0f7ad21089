"""Which module carries out which action: the one place an action kind is looked up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stanch.core.models import ActionKind
from stanch.core.plans.autoscaler import Autoscaler
from stanch.core.plans.canary import Canary
from stanch.core.plans.config_toggle import ConfigToggle
from stanch.core.plans.evacuate import Evacuate
from stanch.core.plans.pause import Pause
from stanch.core.plans.protocol import Action
from stanch.core.plans.restart import Restart
from stanch.core.plans.rollback import Rollback
from stanch.core.plans.scale import Scale

ACTIONS: Mapping[ActionKind, Action[Any]] = {
    ActionKind.ROLLBACK: Rollback(),
    ActionKind.SCALE: Scale(),
    ActionKind.RESTART: Restart(),
    ActionKind.CANARY: Canary(),
    ActionKind.CONFIG_TOGGLE: ConfigToggle(),
    ActionKind.EVACUATE: Evacuate(),
    ActionKind.PAUSE: Pause(),
    ActionKind.AUTOSCALER: Autoscaler(),
}


def action_for(kind: ActionKind) -> Action[Any]:
    return ACTIONS[kind]

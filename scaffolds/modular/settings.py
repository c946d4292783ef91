"""The Modular scaffold's settings. The defaults are the RE-Bench configuration (see
docs/scaffolds/modular.md, "Settings"): the original's default pack
`t_context_and_usage_awarep_gpt_1x4ogda` with the scoring tools added, i.e. toolkit basic,
prompter context_and_usage_aware, one sample from a native-tool-calling generator, discriminator
basic, actor basic, a 10-second default command timeout, temperature 1 and 4096 output tokens.
Models with a small context window get the small-model profile instead (`profile`,
`ModularSettings.for_window`)."""

from __future__ import annotations

from typing import Literal

import pydantic

# Models whose context window is at most this get the small-model profile when `profile` is "auto":
# an 8k-window model cannot hold the full system prompt, six tools, 4,096-token replies and 100k-char
# outputs, and a 135M model given six tools submits within a few steps (docs/scaffolds/modular.md).
SMALL_WINDOW = 16_384
SMALL_TOOLS = ("python", "bash", "score")
SMALL_TRIM_STRIDE = 8


class ModularSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    # -- the pipeline: registered names or import paths "package.module:Factory" ---------------
    toolkit: str = "basic"
    prompter: str = "context_and_usage_aware"
    generator: str = "native"
    discriminator: str = "basic"
    actor: str = "basic"
    component_modules: list[str] = pydantic.Field(
        default_factory=list, description="modules imported first, so they can call register_component")

    # -- generation -------------------------------------------------------------------------------
    samples: int = pydantic.Field(1, ge=1, le=64, description="options generated per step (the original's 'n x')")
    temperature: float = 1.0
    max_tokens: int = pydantic.Field(4096, ge=1)
    system_prompt_as_user: bool = pydantic.Field(
        True, description="native generator: send the system prompt as a user message, as the original did")

    # -- tools ----------------------------------------------------------------------------------
    command_timeout_s: float = pydantic.Field(10.0, gt=0, description="default bash/python timeout (original: 10 s)")
    max_command_timeout_s: float = pydantic.Field(1440.0, gt=0, description="cap for the timeout tool (24 min)")
    scoring_tools: bool = pydantic.Field(True, description="add score/score_log when the environment scores")
    output_dir: str = pydantic.Field("tool_outputs", description="workspace folder for saved tool outputs")

    # -- the context-and-usage-aware prompter -----------------------------------------------------
    long_output_chars: int = pydantic.Field(100_000, ge=1, description="outputs longer than this are always cut")
    long_output_chars_late: int = pydantic.Field(8_000, ge=1, description="cut above this once tokens are past..")
    late_token_fraction: float = pydantic.Field(0.5, ge=0, le=1, description="..this fraction of the token limit")
    head_tail_chars: int = pydantic.Field(300, ge=0, description="chars kept at each end of a cut output")
    context_fraction: float = pydantic.Field(0.75, gt=0, le=1, description="history is trimmed to this share of the window")
    fallback_context_window: int = pydantic.Field(128_000, ge=1024, description="used when the model's window is unknown")
    keep_first_messages: int = pydantic.Field(4, ge=0, description="history messages always kept by trimming")
    trim_stride: int = pydantic.Field(1, ge=1, description="trimming drops steps in multiples of this (the small "
                                                           "profile: at least 8, so a prefix cache keeps working)")
    warn_fraction: float = pydantic.Field(0.75, ge=0, le=1)
    urgent_fraction: float = pydantic.Field(0.9, ge=0, le=1)

    # -- the compare_options discriminator ----------------------------------------------------------
    compare_max_tokens: int = pydantic.Field(3600, ge=1)
    compare_attempts: int = pydantic.Field(3, ge=1, description="tries to get a parsable choice before taking option 0")

    # -- small models ---------------------------------------------------------------------------
    profile: Literal["auto", "full", "small"] = pydantic.Field(
        "auto", description="small: the small-model profile (short system prompt, python/bash/score only, "
                            "small_max_tokens, short tool outputs); auto: small when the model's context "
                            f"window is at most {SMALL_WINDOW:,} tokens, else full (the configuration above)")
    small_max_tokens: int = pydantic.Field(192, ge=1, description="output cap per call under the small profile")
    small_output_chars: int = pydantic.Field(1_500, ge=1, description="tool outputs cut above this, small profile")
    small_score_every: int = pydantic.Field(8, ge=1, description="small profile: steps without a score after "
                                                                 "which the next step must score")

    # -- running ----------------------------------------------------------------------------------
    resume: Literal["auto", "never", "require"] = pydantic.Field(
        "auto", description="auto: continue from saved state when state_dir has it; never: start fresh; "
                            "require: fail unless saved state exists")
    max_steps: int | None = pydantic.Field(None, ge=1, description="stop (and submit) after this many steps")

    def for_window(self, context_window: int | None) -> ModularSettings:
        """The settings a run uses with a model of this context window: `profile` resolved to
        "full" or "small", and under "small" the output cap and output cut made to fit."""
        small = self.profile == "small" or (self.profile == "auto" and context_window is not None
                                            and context_window <= SMALL_WINDOW)
        if not small:
            return self.model_copy(update={"profile": "full"})
        return self.model_copy(update={
            "profile": "small", "max_tokens": min(self.max_tokens, self.small_max_tokens),
            "long_output_chars": min(self.long_output_chars, self.small_output_chars),
            "long_output_chars_late": min(self.long_output_chars_late, self.small_output_chars),
            "head_tail_chars": min(self.head_tail_chars, self.small_output_chars // 3),
            "trim_stride": max(self.trim_stride, SMALL_TRIM_STRIDE)})

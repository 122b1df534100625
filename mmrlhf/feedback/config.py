"""`FeedbackConfig`: every feedback option, flat and validated (the `feedback:` config section).

Fields are flat scalars (plus two lists) so a dotted override such as `feedback.rater=noisy` or
`feedback.sigma=0.5` maps to exactly one field. Each rater reads only the fields it needs; see
`mmrlhf.feedback.raters` for which.

`source` picks where the episode-end reward comes from: `rater` (a per-episode label, the
fields up to `aggregate`) or `reward_model` (RLHF: a learned reward model scores every episode;
the `rm_*`, `query_*`, `preference_*` and `kl_*` fields, with `label_budget` as the total number
of preference labels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmrlhf.feedback.raters import RATERS, Rater, make_rater, rater_seed

if TYPE_CHECKING:
    from mmrlhf.models.config import ModelConfig

# How queries are chosen (see feedback/queries.py).
QueryMode = Literal["random", "active", "optimistic", "novel"]
QueryGroup = Literal["scene", "prompt", "none"]  # finest first
QueryRank = Literal["group", "pool"]
QueryChallengers = Literal["any", "floor"]
QueryChallengerScenes = Literal[
    "random", "unexplained", "unexplained_spread", "unexplained_kinds", "kinds"
]
# What each scene rule of the floor rotation uses (feedback.queries.novel_queries): the
# reward model's fit of the known answers to a scene (needs an answer head), the spread of a
# word's tries over questions, the answer kinds (feedback.kinds).
SCENE_FIT_RULES = ("unexplained", "unexplained_spread", "unexplained_kinds")
SPREAD_RULES = ("unexplained_spread", "unexplained_kinds", "kinds")
KIND_RULES = ("unexplained_kinds", "kinds")
# Reward-model encoder/fusion choices: the `mmrlhf.models.config` kinds that need no local
# model directory. Spelled out here because importing mmrlhf.models loads RLlib, and the
# feedback config must stay cheap to import (a test keeps them in step).
RMTextEncoder = Literal["transformer", "gru", "bag"]
RMImageEncoder = Literal["cnn", "vit"]
RMFusion = Literal["concat", "sum", "weighted", "cross_attention", "joint", "factored_attention"]
RMAttentionGate = Literal["softmax", "sigmoid"]
RMHead = Literal["compare", "answer_logits", "answer_sigmoid"]
RMWinners = Literal["strict", "judged_good"]
# When rm_winner_softmax / rm_winners take over the winner term: from the first fit, or from
# the final refit (the budget spent), the strict own-odds term fitting the labels before.
WinnerTermFrom = Literal["start", "final_refit"]
ContrastFrom = Literal["start", "final_refit"]
# Heads that score a response from logits over the vocabulary: a log-likelihood
# (answer_logits) or the log-odds of being right (answer_sigmoid).
ANSWER_HEADS: tuple[str, ...] = ("answer_logits", "answer_sigmoid")


class FeedbackConfig(BaseModel):
    """Episode-end feedback: who rates, how the label becomes reward, how many labels.

    Reward written to the episode: every env reward is multiplied by `env_weight`; when the
    episode gets a label, `feedback_weight * label.reward` (label.reward in [0, 1]) is added to
    its last step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Turn feedback on; off = metrics only.")
    rater: str = Field("oracle", description="Registered rater name (see raters.RATERS).")
    seed: int = Field(0, ge=0, description="Feedback seed; each EnvRunner derives its own.")

    # Reward shaping.
    env_weight: float = Field(1.0, description="Multiplier on the env's own rewards.")
    feedback_weight: float = Field(1.0, description="Multiplier on the feedback reward.")

    # Which episodes get rated.
    rate_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Probability that an episode is sent to the rater."
    )
    label_budget: int | None = Field(
        None,
        ge=0,
        description="Labels allowed in all (None = unlimited). Global with use_hub, "
        "otherwise per EnvRunner.",
    )

    # Shared state across EnvRunners.
    use_hub: bool = Field(False, description="Share budget and label log via a FeedbackHub.")
    hub_name: str = Field(
        "mmrlhf-feedback",
        min_length=1,
        description="Ray actor name of the hub; the Tune trial id is appended.",
    )
    hub_block: int = Field(32, ge=1, description="Labels an EnvRunner reserves per hub round trip.")

    # Rater parameters (each rater reads only its own; see mmrlhf.feedback.raters).
    sigma: float = Field(0.1, ge=0.0, description="Gaussian noise std (noisy, rating).")
    epsilon: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Label flip probability (noisy, mistake, panel). None: 0.1 for mistake, "
        "else 0.",
    )
    skip_prob: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Probability of no label, any rater. None: 0.2 for skip, else 0.",
    )
    gamma: float = Field(0.9, ge=0.0, le=1.0, description="Step-score discount (myopic).")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Thumbs-up threshold (binary).")
    rating_levels: int = Field(5, ge=2, le=100, description="Stars on the scale (rating).")
    click_low: float = Field(0.05, ge=0.0, le=1.0, description="P(click) at score 0 (click).")
    click_high: float = Field(0.95, ge=0.0, le=1.0, description="P(click) at score 1 (click).")
    dwell_min_s: float = Field(2.0, ge=0.0, description="Mean dwell seconds at score 0 (dwell).")
    dwell_max_s: float = Field(30.0, gt=0.0, description="Mean dwell seconds at score 1 (dwell).")
    dwell_noise: float = Field(0.3, ge=0.0, description="Log-normal dwell noise (dwell).")
    panel_sigmas: list[float] = Field(
        default_factory=lambda: [0.1, 0.2, 0.3],
        min_length=1,
        description="Noise std of each panel member (panel).",
    )
    aggregate: Literal["mean", "majority"] = Field("mean", description="Panel aggregation.")

    # Where the reward comes from.
    source: Literal["rater", "reward_model", "human"] = Field(
        "rater",
        description="rater: a label per rated episode; reward_model: a learned reward model "
        "scores every episode (RLHF); human: people label in the web app and their labels "
        "train that reward model (stored as reward_model plus human_store; an experiment "
        "config fills in <output_dir>/<name>/labels.sqlite).",
    )

    # RLHF: reward-model architecture (encoders and fusion as in mmrlhf.models).
    rm_ensemble: int = Field(3, ge=1, le=16, description="Reward-model ensemble members.")
    rm_text_encoder: RMTextEncoder = Field("bag", description="Reward-model text encoder.")
    rm_image_encoder: RMImageEncoder = Field("cnn", description="Reward-model image encoder.")
    rm_fusion: RMFusion = Field("concat", description="Reward-model fusion.")
    rm_embed_dim: int = Field(32, ge=8, le=1024, description="Reward-model encoder width.")
    rm_hidden: int = Field(64, ge=1, description="Hidden width of the reward-model MLPs.")
    rm_cnn_channels: list[int] = Field(
        default_factory=lambda: [16], min_length=1, description="Reward-model CNN channels."
    )
    rm_cnn_grid: int = Field(2, ge=1, le=32, description="Reward-model CNN patch grid side.")
    rm_attention_gate: RMAttentionGate = Field(
        "softmax", description="Reward-model attention weights over patches (attention fusions)."
    )
    rm_factored_residual: bool = Field(
        False, description="factored_attention only: add the prompt tokens to what they read."
    )
    rm_head: RMHead = Field(
        "compare",
        description="compare: an MLP over the scene features, the response embedding and "
        "their product; answer_logits: logits over the vocabulary from the scene features, "
        "the reward is the response's mean token log-likelihood under their softmax; "
        "answer_sigmoid: the same logits, each word judged on its own (the reward is the "
        "mean token log-odds of being right), so a word no label has named stays at even "
        "odds instead of being pushed down by every other word's win "
        "(see feedback.reward_model).",
    )
    rm_response_len: int = Field(8, ge=1, le=512, description="Response tokens the RM reads.")
    rm_checkpoint: str | None = Field(
        None, description="Start from this saved reward model (published as version 1)."
    )

    # RLHF: reward-model training.
    rm_lr: float = Field(1e-3, gt=0.0, description="Reward-model learning rate.")
    rm_weight_decay: float = Field(1e-4, ge=0.0, description="Reward-model AdamW decay.")
    rm_batch_size: int = Field(32, ge=1, description="Labels per reward-model minibatch.")
    rm_epochs: float = Field(4.0, gt=0.0, description="Passes over the labels per iteration.")
    rm_min_steps: int = Field(50, ge=1, description="Minibatches per iteration at least.")
    rm_max_steps: int = Field(400, ge=1, description="Minibatches per iteration at most.")
    rm_pretrain_steps: int = Field(
        0,
        ge=0,
        description="Contrastive (InfoNCE image-prompt) steps on unlabelled pool episodes "
        "before and while the first labels train (semi-supervised; 0 = off).",
    )
    rm_pretrain_per_iter: int = Field(
        200, ge=1, description="Of those steps, at most this many per iteration."
    )
    rm_pretrain_min_pool: int = Field(
        512, ge=2, description="Pool episodes needed before contrastive steps start."
    )
    rm_contrastive_batch: int = Field(
        256, ge=2, description="Unlabelled episodes per member and contrastive step."
    )
    rm_refit_growth: float | None = Field(
        None,
        gt=1.0,
        description="Refit the reward model from its pretrained weights (fresh optimizer, all "
        "labels) each time the label set grows by this factor, and once when the budget is "
        "spent; None = train in place only.",
    )
    rm_refit_epochs: float = Field(40.0, gt=0.0, description="Passes over the labels per refit.")
    rm_settle_epochs: float | None = Field(
        None, gt=0.0,
        description="Keep training (rm_epochs per hub step, publishing each time) while no "
        "labels arrive, until the label set has had this many passes since it last changed; "
        "None = train only when labels arrive.",
    )  # fmt: skip
    rm_winner_weight: float = Field(
        0.0,
        ge=0.0,
        description="answer heads only: weight of the strict winners' log-likelihood "
        "in the RM loss (each winner's answer fitted as the answer to its scene; right for "
        "tasks with one best answer, such as vqa). 0 = preferences alone.",
    )
    rm_winner_softmax: bool = Field(
        False,
        description="answer_sigmoid: fit each winner with a softmax over the head's logits, "
        "so a right answer also pushes every other answer to its scene down (as a supervised "
        "label does), not only its own odds up. answer_logits already fits winners that way.",
    )
    rm_winners: RMWinners = Field(
        "strict",
        description="Episodes the winner term fits: strict (strict winners of pairs and "
        "rankings) or judged_good (also both episodes of a tie marked 'both good', thumbs up).",
    )
    rm_winner_prior_adjust: float = Field(
        0.0,
        ge=0.0,
        description="Logit adjustment of the softmax winner term (rm_winner_softmax): each "
        "winner is fitted with tau * log pi(answer | prompt) added to the answer logits, pi "
        "the answers the winners give to the same prompt (one pseudo-count spread over the "
        "vocabulary), and the reward reads the logits without it. Labels that confirm one "
        "answer per question teach that answer as a prior for the question; adjusted, the "
        "logits carry what the image adds to it. tau here; 0 = off.",
    )
    rm_winner_term_from: WinnerTermFrom = Field(
        "start",
        description="When rm_winner_softmax and rm_winners shape the winner term: from the "
        "first fit (start), or only from the final refit once the label budget is spent "
        "(final_refit; needs rm_refit_growth): the model that picks the queries and rewards "
        "the policy while labels come keeps the strict own-odds term, and the policy spends "
        "the rest of the run on the better fit of the finished label set.",
    )

    # RLHF: queries and the simulated preference rater.
    query_mode: QueryMode = Field(
        "active",
        description="random; active (largest ensemble disagreement); optimistic (holds "
        "the episode with the highest ensemble mean + std: fewer ties while the policy is "
        "weak); or novel (the prompt's least-judged response against its most promising "
        "others: asks about answers the policy gives rarely).",
    )
    query_novelty: float = Field(
        1.0, ge=0.0,
        description="Novel mode: weight of 1 / sqrt(1 + judged) against the z-scored upper "
        "bound when choosing a query's challenger (feedback.queries.novel_queries).",
    )  # fmt: skip
    query_challengers: QueryChallengers = Field(
        "any",
        description="Novel mode: which episodes may be a challenger: any (chosen by "
        "novelty and the reward model's z-scored bound), or only those the policy floor's "
        "uniform part drew, chosen by novelty alone (model.policy_floor > 0; an unbiased "
        "look at a rarely given answer, feedback.queries.novel_queries).",
    )
    query_give_up: int = Field(
        0, ge=0,
        description="Floor challengers: > 0 = an answer leaves their rotation once a label "
        "showed it right, or after this many labelled episodes without one; with none left "
        "in the pool, challengers are chosen as with query_challengers=any. 0 = every "
        "answer stays in the rotation.",
    )  # fmt: skip
    query_challenger_scenes: QueryChallengerScenes = Field(
        "random",
        description="Floor challengers with a give-up: random = a prompt is drawn first and "
        "its least-judged floor draw challenges; unexplained = the least-judged answer in the "
        "whole pool, at the floor draw whose scene the answers shown right so far fit least "
        "(an answer the labels have not shown right is likelier right there; needs an answer "
        "head, feedback.queries.novel_queries). On vqa it also sent words to questions of a "
        "kind with no known answer yet, so rlhf_vqa.yaml uses kinds. unexplained_spread = "
        "the same, with each scene's chance of an unknown answer divided by 1 + the labelled "
        "episodes that gave this answer to this question: a word that failed at a question "
        "is tried at others. unexplained_kinds = unexplained_spread, trying first the "
        "questions whose known answers fill the same slot of the questions' wording as the "
        "answer (a colour for colour questions; feedback.kinds). kinds = the same tiers and "
        "spread at random scenes, without the reward model: a draw is right as often as its "
        "answer is right at its question, however wrong the model's picture of the scenes.",
    )
    query_confirmations: int = Field(
        1, ge=1,
        description="Floor challengers with a give-up: an answer leaves the rotation once "
        "labels have shown it right this many times; after the first, the give-up no longer "
        "applies to it (feedback.queries.novel_queries).",
    )  # fmt: skip
    query_give_up_rounds: int = Field(
        1, ge=1,
        description="Floor challengers with a give-up: > 1 = once every answer of the pool's "
        "floor draws has settled, the answers never shown right come back for another "
        "query_give_up labelled episodes, up to this many rounds in all (later tries meet a "
        "reward model that explains more scenes; feedback.queries.novel_queries). With "
        "query_challenger_scenes kinds or unexplained_kinds, only answers whose kin (words "
        "filling the same slot of the questions' wording) were shown right come back.",
    )  # fmt: skip
    query_partner_novelty: float = Field(
        0.0, ge=0.0,
        description="Novel mode: > 0 = partners are the model's bets plus this / sqrt(1 + r), "
        "r the labelled episodes with the same prompt and response, so the labels judge more "
        "answers per question than the model's favourite (feedback.queries.novel_queries). "
        "0 = the model's best bets.",
    )  # fmt: skip
    query_k: int = Field(2, ge=2, le=16, description="Episodes per query: 2 = pair, >2 = rank.")
    queries_per_iter: int = Field(20, ge=0, description="Labels asked for per iteration.")
    query_decay: float = Field(0.0, ge=0.0, description="Per-iteration decay of queries.")
    initial_queries: int = Field(0, ge=0, description="Extra labels in the first iteration.")
    query_candidates: int = Field(
        10, ge=1, description="Active mode: candidate queries scored per query asked."
    )
    query_rank: QueryRank = Field(
        "group",
        description="Active and optimistic modes: group = candidates compete within their "
        "prompt, the prompt drawn as random mode draws it (the labels' question mix follows "
        "the episodes'); pool = all compete (a prompt whose answers score higher by nature "
        "can take every query).",
    )
    query_group: QueryGroup = Field(
        "prompt",
        description="What a query's episodes share, finest first where the pool allows: "
        "scene (different answers to one image and prompt; env scene_repeats >= query_k), "
        "prompt, or none.",
    )
    preference_beta: float = Field(
        10.0, ge=0.0, description="Simulated rater's Boltzmann rationality on [0, 1] scores."
    )
    preference_epsilon: float = Field(
        0.0, ge=0.0, le=1.0, description="Probability of a uniformly random answer."
    )
    preference_tie_margin: float = Field(
        0.0, ge=0.0, le=1.0, description="Score difference reported as a tie (0 = equal)."
    )
    preference_both_bad: float | None = Field(
        None, ge=0.0, le=1.0,
        description="A tie whose scores are both at most this is reported 'both bad' (the "
        "reward model then learns both are bad, not just equal); None = plain ties.",
    )  # fmt: skip
    preference_both_good: float | None = Field(
        None, ge=0.0, le=1.0,
        description="A tie whose scores are both at least this is reported 'both good'; "
        "None = plain ties.",
    )  # fmt: skip

    # RLHF: episode transport, weight sync, reward normalisation.
    rm_pool_size: int = Field(2048, ge=2, description="Recent episodes the RM hub keeps.")
    rm_send_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="Fraction of episodes sent to the RM hub."
    )
    rm_send_block: int = Field(64, ge=1, description="Episodes per fire-and-forget send.")
    rm_sync_every: int = Field(
        32, ge=1, description="Episodes between non-blocking checks for new RM weights."
    )
    rm_norm_prior: int = Field(
        256,
        ge=1,
        description="Pseudo-count of the hub's reward stats in each runner's running "
        "mean/std after a new version.",
    )
    rm_reward_clip: float = Field(5.0, gt=0.0, description="Clip normalised rewards to +-this.")
    rm_novelty_bonus: float = Field(
        0.0,
        ge=0.0,
        description="Exploration bonus scale / sqrt(1 + n) added to each normalised reward, n "
        "the labelled episodes that gave the same response, while label budget remains "
        "(answers no label has judged keep being tried; feedback.novelty). 0 = off.",
    )
    rm_image_contrast: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Subtract this share of the reward model's mean per-word scores over other "
        "images with the same prompt from each reward (feedback.contrast; 1 = pointwise mutual "
        "information between image and answer), so the policy is paid for what the image "
        "adds, not for the answer the question alone suggests. Needs an answer head. 0 = off.",
    )
    rm_contrast_from: ContrastFrom = Field(
        "start",
        description="When rm_image_contrast starts: with the first published model (start), "
        "or with the final refit once the label budget is spent (final_refit; needs "
        "rm_refit_growth): the policy first learns from plain rewards what kind of answer "
        "each question wants, which the contrast leaves unpaid.",
    )
    rm_contrast_images: int = Field(
        64, ge=1, description="Distinct recent images per prompt the contrast baseline averages."
    )
    rm_contrast_min_images: int = Field(
        16,
        ge=1,
        description="A prompt seen with fewer distinct images gets no contrast baseline (its "
        "reward stays plain).",
    )
    rm_num_cpus: float = Field(0.0, ge=0.0, description="CPUs reserved for the RM hub actor.")
    rm_save_dir: str | None = Field(
        None, description="Save every published reward model here (latest overwrites)."
    )
    rm_label_log: str | None = Field(
        None,
        description="Directory where the RM hub appends every label it trains on, with its "
        "episodes (feedback/label_log.py), to refit or study offline; None = not kept.",
    )

    # Human labels from a label store (RLHF; see `feedback/human.py`).
    human_store: str | None = Field(
        None,
        description="labels.sqlite path: the RM hub enqueues episodes there for people and "
        "trains on their labels (source reward_model); None = simulated rater only.",
    )
    human_enqueue_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of hub episodes queued for people."
    )
    human_enqueue_per_iter: int = Field(
        32, ge=0, description="Episodes queued for people per iteration at most."
    )
    human_settle_s: float = Field(
        0.0,
        ge=0.0,
        description="Use a human label only once unchanged this long (an undo in time "
        "keeps it out of training).",
    )
    human_simulated: bool = Field(
        False, description="With human_store, also ask the simulated rater each iteration."
    )
    human_blocking: bool = Field(
        False,
        description="Debug mode: wait up to human_blocking_timeout_s for a person's score on "
        "each episode (needs human_store and source='rater'), else use the rater.",
    )
    human_blocking_timeout_s: float = Field(30.0, gt=0.0)
    human_app_port: int | None = Field(
        8765,
        ge=0,
        le=65535,
        description="With human_store, `train` serves the labelling page on 127.0.0.1 at this "
        "port while it runs (0 = any free port, None = do not start it).",
    )

    # KL penalty toward a reference policy (MultimodalPPOLearner).
    kl_coeff: float = Field(0.0, ge=0.0, description="Weight of KL(pi || pi_ref); 0 = off.")
    kl_reference: str | None = Field(
        None,
        description="Reference policy checkpoint (algorithm or module dir); None = the "
        "initial policy.",
    )

    @field_validator("rater")
    @classmethod
    def _known_rater(cls, value: str) -> str:
        if value not in RATERS:
            raise ValueError(f"unknown rater {value!r}; allowed: {', '.join(sorted(RATERS))}")
        return value

    @field_validator("panel_sigmas")
    @classmethod
    def _non_negative_sigmas(cls, value: list[float]) -> list[float]:
        if any(s < 0 for s in value):
            raise ValueError(f"every panel sigma must be >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _ordered_ranges(self) -> FeedbackConfig:
        if self.click_low > self.click_high:
            raise ValueError(
                f"click_low ({self.click_low}) must be <= click_high ({self.click_high})"
            )
        if self.dwell_min_s >= self.dwell_max_s:
            raise ValueError(
                f"dwell_min_s ({self.dwell_min_s}) must be < dwell_max_s ({self.dwell_max_s})"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _human_source(cls, data: Any) -> Any:
        # "human" is RLHF fed by people: the reward-model source reading a label store.
        if isinstance(data, dict) and data.get("source") == "human":
            if not data.get("human_store"):
                raise ValueError(
                    "source='human' needs human_store, the labels.sqlite people label into "
                    "(an experiment config sets <output_dir>/<name>/labels.sqlite)"
                )
            data = {**data, "source": "reward_model"}
        return data

    @model_validator(mode="after")
    def _human_store_needs_reward_model(self) -> FeedbackConfig:
        if self.human_blocking:
            if not self.human_store or self.source != "rater":
                raise ValueError(
                    "human_blocking needs human_store and source='rater' (the rater is the "
                    "fallback when nobody answers in time)"
                )
        elif self.human_store and self.source != "reward_model":
            raise ValueError(
                "human_store needs source='reward_model' (the RM hub reads it), or "
                "human_blocking=true for the blocking debug mode"
            )
        return self

    @model_validator(mode="after")
    def _tie_qualities_apart(self) -> FeedbackConfig:
        bad, good = self.preference_both_bad, self.preference_both_good
        if bad is not None and good is not None and bad >= good:
            raise ValueError(
                f"preference_both_bad ({bad}) must be below preference_both_good ({good}): "
                f"one tie cannot be both"
            )
        return self

    @model_validator(mode="after")
    def _buildable_reward_model(self) -> FeedbackConfig:
        # Fail at config time, not inside an EnvRunner, when the RM settings cannot build.
        if self.source == "reward_model":
            try:
                self.rm_model_config()
            except ValueError as err:
                raise ValueError(f"reward-model settings (rm_*) are invalid: {err}") from None
        if self.rm_image_contrast > 0 and self.rm_head not in ANSWER_HEADS:
            raise ValueError(
                f"rm_image_contrast > 0 ({self.rm_image_contrast}) subtracts per-word scores, "
                f"which only an answer head has: rm_head one of {ANSWER_HEADS}, got "
                f"rm_head={self.rm_head!r}"
            )
        if self.rm_contrast_from == "final_refit":
            self._check_final_refit_comes("rm_contrast_from")
        if self.rm_contrast_min_images > self.rm_contrast_images:
            raise ValueError(
                f"rm_contrast_min_images ({self.rm_contrast_min_images}) must be at most "
                f"rm_contrast_images ({self.rm_contrast_images})"
            )
        if self.rm_winner_weight > 0 and self.rm_head not in ANSWER_HEADS:
            raise ValueError(
                f"rm_winner_weight > 0 ({self.rm_winner_weight}) needs an answer head, "
                f"rm_head one of {ANSWER_HEADS} (they read a reward as log P(right)), got "
                f"rm_head={self.rm_head!r}"
            )
        if self.query_challenger_scenes != "random":
            self._check_floor_rotation(
                f"query_challenger_scenes={self.query_challenger_scenes!r}"
            )
            if self.query_challenger_scenes in SCENE_FIT_RULES and (
                self.rm_head not in ANSWER_HEADS
            ):
                raise ValueError(
                    f"query_challenger_scenes={self.query_challenger_scenes!r} scores the "
                    "known answers from "
                    f"per-word scores, which only an answer head has: rm_head one of "
                    f"{ANSWER_HEADS}, got rm_head={self.rm_head!r}"
                )
        if self.query_confirmations > 1:
            self._check_floor_rotation(f"query_confirmations={self.query_confirmations}")
        if self.query_give_up_rounds > 1:
            self._check_floor_rotation(f"query_give_up_rounds={self.query_give_up_rounds}")
        if self.query_partner_novelty > 0 and self.query_mode != "novel":
            raise ValueError(
                f"query_partner_novelty ({self.query_partner_novelty}) weighs the partners of "
                f"challenger queries; it needs query_mode=novel, got {self.query_mode!r}"
            )
        if self.rm_winner_weight == 0 and (self.rm_winner_softmax or self.rm_winners != "strict"):
            raise ValueError(
                f"rm_winner_softmax ({self.rm_winner_softmax}) and rm_winners "
                f"({self.rm_winners!r}) shape the winner term, which rm_winner_weight=0 turns "
                f"off; set rm_winner_weight > 0 or leave them at their defaults"
            )
        if self.rm_winner_prior_adjust > 0 and not self.rm_winner_softmax:
            raise ValueError(
                f"rm_winner_prior_adjust ({self.rm_winner_prior_adjust}) adjusts the softmax "
                f"winner term; it needs rm_winner_softmax=true"
            )
        if self.rm_winner_term_from == "final_refit":
            if not self.rm_winner_softmax and self.rm_winners == "strict":
                raise ValueError(
                    "rm_winner_term_from='final_refit' switches the winner term to "
                    "rm_winner_softmax / rm_winners at the final refit, but both are at their "
                    "defaults (nothing to switch to); set rm_winner_softmax=true or "
                    "rm_winners='judged_good', or rm_winner_term_from='start'"
                )
            self._check_final_refit_comes("rm_winner_term_from")
        return self

    def _check_floor_rotation(self, option: str) -> None:
        # Floor challengers that leave as they settle (feedback.queries.novel_queries).
        rotating = (
            self.query_mode == "novel" and self.query_challengers == "floor"
            and self.query_give_up > 0
        )  # fmt: skip
        if not rotating:
            raise ValueError(
                f"{option} acts on the floor challengers' rotation: it needs "
                "query_mode='novel', query_challengers='floor' and query_give_up > 0, got "
                f"{self.query_mode!r}, {self.query_challengers!r}, {self.query_give_up}"
            )

    def _check_final_refit_comes(self, option: str) -> None:
        # Only a reward model refits (an RLHF config's oracle run has no budget).
        no_refit = self.rm_refit_growth is None or self.label_budget is None
        if self.source == "reward_model" and no_refit:
            raise ValueError(
                f"{option}='final_refit' needs refits (rm_refit_growth > 1, got "
                f"{self.rm_refit_growth}) and a label_budget (got {self.label_budget}): the "
                f"final refit comes when the budget is spent, and without both it never does"
            )

    @field_validator("rm_cnn_channels")
    @classmethod
    def _positive_channels(cls, value: list[int]) -> list[int]:
        if any(c < 1 for c in value):
            raise ValueError(f"every rm_cnn_channels entry must be >= 1, got {value}")
        return value

    def rm_model_config(self) -> ModelConfig:
        """The reward model's encoder/fusion settings as a `ModelConfig`."""
        from mmrlhf.models.config import ModelConfig

        return ModelConfig(
            text_encoder=self.rm_text_encoder,
            image_encoder=self.rm_image_encoder,
            fusion=self.rm_fusion,
            embed_dim=self.rm_embed_dim,
            num_heads=2 if self.rm_embed_dim % 2 == 0 else 1,
            cnn_channels=tuple(self.rm_cnn_channels),
            cnn_grid=self.rm_cnn_grid,
            attention_gate=self.rm_attention_gate,
            factored_residual=self.rm_factored_residual,
            hidden_sizes=(self.rm_hidden,),
        )

    def rm_hub_actor_name(self, trial_id: str | None = None) -> str:
        """Ray actor name of the reward-model hub for one Tune trial."""
        return f"{self.hub_name}-rm-{trial_id or 'default'}"

    def make_rater(self, stream: int = 0) -> Rater:
        """Build this config's rater for one stream (EnvRunner index; -1 = none)."""
        rater = make_rater(self.rater, self, rater_seed(self.seed, stream))
        if self.human_blocking and self.human_store:
            from mmrlhf.feedback.blocking import BlockingHumanRater

            return BlockingHumanRater(self.human_store, self.human_blocking_timeout_s, rater)
        return rater

    def hub_actor_name(self, trial_id: str | None = None) -> str:
        """Ray actor name of the hub for one Tune trial ("default" outside Tune)."""
        return f"{self.hub_name}-{trial_id or 'default'}"

"""Synthetic scenes with known objects, and the HumanOmniV2-style chain that reasons about them."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from thinking_summarizer.schemas.params.data import DemoData

HORIZONTAL = {"left": 0.2, "center": 0.5, "right": 0.8}
SIDE_PHRASE = {"left": "on the left", "center": "in the middle", "right": "on the right"}
DEPTH = {"background": 0.38, "foreground": 0.72}

_SEEN = [
    "Looking across the frame, there is {desc}.",
    "I notice {desc}.",
    "The frame also shows {desc}.",
    "Clearly visible is {desc}, which stays in view for most of the clip.",
]
_RULED_OUT = [
    "I can hear a {noun} in the audio, but no {noun} is visible anywhere in the frame.",
    "At first a shape near the edge looked like a {noun}, but on closer inspection there is no {noun} in the scene.",
    "The speaker mentions a {noun}, which is only heard and never shown.",
]
_FILLER = [
    "Let me go through the clip again from the beginning to make sure nothing is missed.",
    "The audio track and the visual cues seem consistent with each other.",
    "The lighting stays the same throughout, so the colours I describe are reliable.",
    "The camera does not move much, so the positions I mention hold for the whole clip.",
    "It is worth checking whether the expression changes towards the end of the video.",
    "Nothing in the background suggests a sudden change of situation.",
    "I should weigh the facial expression more than the setting when judging the emotion.",
    "The pace of the movement is slow and steady, without abrupt gestures.",
]


@dataclass
class PlacedObject:
    """An object of a scene: what it is, how it looks, where it starts and how it moves."""

    category: str
    noun: str
    colour: str
    description: str
    prompt: str
    priority: str
    side: str
    depth: str
    size: tuple[float, float]
    velocity: tuple[float, float]


@dataclass
class Scene:
    """Everything the demo knows about one scene."""

    scene_id: str
    setting: str
    objects: list[PlacedObject]
    distractors: list[str]
    emotion: str
    question: str
    options: list[str]
    answer_letter: str
    context: str = ""
    thinking: str = ""

    @property
    def solution(self) -> str:
        return (
            f"<context>{self.context}</context><think>{self.thinking}</think>"
            f"<answer>{self.answer_letter}</answer>"
        )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _person(rng: random.Random, cfg: DemoData, colour: str, side: str, depth: str) -> PlacedObject:
    noun = rng.choice(cfg.people.nouns)
    garment = rng.choice(cfg.people.garments)
    return PlacedObject(
        category="person", noun=noun, colour=colour,
        description=f"{_article(noun)} {noun} in {_article(colour)} {colour} {garment} {SIDE_PHRASE[side]} in the {depth}",
        prompt=f"{noun} in {colour} {garment}", priority="primary",
        side=side, depth=depth, size=(0.12, 0.4), velocity=(rng.uniform(-1.5, 1.5), rng.uniform(-0.4, 0.4)),
    )


def _thing(rng: random.Random, cfg: DemoData, category: str, colour: str, side: str, depth: str) -> PlacedObject:
    spec = cfg.things[category]
    noun = rng.choice(spec.nouns)
    return PlacedObject(
        category=category, noun=noun, colour=colour,
        description=f"{_article(colour)} {colour} {noun} {SIDE_PHRASE[side]} in the {depth}",
        prompt=f"{colour} {noun}", priority="secondary",
        side=side, depth=depth, size=tuple(spec.size),
        velocity=(rng.uniform(-1.0, 1.0), rng.uniform(-0.3, 0.3)),
    )


def make_scene(index: int, cfg: DemoData) -> Scene:
    """Build scene `index` deterministically from the demo config and its seed."""
    rng = random.Random(f"{cfg.seed}:{index}")
    n_objects = rng.choice([3, 4])
    n_people = rng.choice([1, 1, 2])
    colours = rng.sample(sorted(cfg.colours), n_objects)
    slots = rng.sample([(s, d) for s in HORIZONTAL for d in DEPTH], n_objects)
    categories = rng.sample(sorted(cfg.things), n_objects - n_people + 2)
    objects = [_person(rng, cfg, colours[i], *slots[i]) for i in range(n_people)]
    objects += [
        _thing(rng, cfg, categories[i - n_people], colours[i], *slots[i])
        for i in range(n_people, n_objects)
    ]
    distractors = [cfg.things[c].nouns[0] for c in categories[n_objects - n_people:]]
    emotion = rng.choice(sorted(cfg.emotions))
    options_emotions = [emotion, *rng.sample(sorted(set(cfg.emotions) - {emotion}), 3)]
    rng.shuffle(options_emotions)
    letters = string.ascii_uppercase
    subject = objects[0]
    scene = Scene(
        scene_id=f"scene_{index:04d}",
        setting=rng.choice(cfg.settings),
        objects=objects,
        distractors=distractors,
        emotion=emotion,
        question=f"What emotion does the {subject.prompt} show in the video?",
        options=[f"{letters[i]}. {e.capitalize()}" for i, e in enumerate(options_emotions)],
        answer_letter=letters[options_emotions.index(emotion)],
    )
    scene.context, scene.thinking = _chain(rng, scene, cfg)
    return scene


def _chain(rng: random.Random, scene: Scene, cfg: DemoData) -> tuple[str, str]:
    """The context and the thinking: every visible object, the ruled-out ones, the emotion cues."""
    subject = scene.objects[0]
    cues = cfg.emotions[scene.emotion]
    visible = ", ".join(o.description for o in scene.objects)
    context = (
        f"The video shows {scene.setting}. In view are {visible}. "
        f"The audio carries {cues[2]} from the {subject.noun}."
    )
    seen = [rng.choice(_SEEN).format(desc=o.description) for o in scene.objects]
    ruled_out = [rng.choice(_RULED_OUT).format(noun=n) for n in scene.distractors]
    options = [o.split(". ", 1)[1].lower() for o in scene.options]
    rejections = [
        f"The option {other} does not fit, since I see none of the signs of it such as "
        f"{cfg.emotions[other][0]}."
        for other in options if other != scene.emotion
    ]
    verdict = (
        f"The {subject.noun} shows {cues[0]} and {cues[1]}, and the voice has {cues[2]}, "
        f"which all point to the emotion {scene.emotion}."
    )
    opening = f"The question asks about the emotion of the {subject.prompt}. Let me look at the scene first."
    body = [*seen, *ruled_out]
    rng.shuffle(body)
    closing = [verdict, *rejections, f"So the answer is {scene.answer_letter}."]
    fillers = rng.sample(_FILLER, len(_FILLER))
    lo, hi = cfg.thinking_chars.min, cfg.thinking_chars.max
    parts = [opening, *body, *closing]
    while len(" ".join(parts)) < lo and fillers:
        parts.insert(1 + rng.randrange(len(body) + 1), fillers.pop())
    while len(" ".join(parts)) > hi and rejections:
        parts.remove(rejections.pop())
    return context, " ".join(parts)

"""Save reference outputs of a LAVIS BLIP-2 / InstructBLIP model, to check cit_study's LAVIS importer against.

Run this INSIDE an environment that has `salesforce-lavis` (never the cit_study one), with local weights:

    python scripts/lavis_crosscheck.py --name blip2_opt --model-type pretrain_opt2.7b \
        --weights /data/blip2_pretrained_opt2.7b.pth --images cat.jpg street.jpg --out lavis_ref.pt

For an InstructBLIP model (the Q-Former also reads the instruction) add `--prompt "What is in the image?"`.
LAVIS still builds its model from its own config: it needs bert-base-uncased, the EVA ViT-g weights and
the LLM (`--llm /path/to/local/llm` overrides the config's hub name), from its caches or the network.

The file holds the preprocessed images and, computed by LAVIS in float32 on the CPU, each stage:
`image_embeds` (vision encoder + ln_vision), `query_output` (Q-Former outputs at the query positions) and
`language_projection` (those projected into the LLM's width); for InstructBLIP also the Q-Former tokens.
Back in the cit_study environment, import the same weights and compare stage by stage:

    from cit_study.lavis import load_lavis, check_lavis_reference
    model, report = load_lavis("/data/blip2_pretrained_opt2.7b.pth", config)
    check_lavis_reference(model, "lavis_ref.pt")   # largest |difference| per stage; raises past atol

Only `torch` is imported at module level, so `save_reference` and `reference_outputs` can be used (and
tested) without LAVIS; `build` and `main` import LAVIS when called.
"""
import argparse
import torch

FORMAT = "cit_study.lavis_reference/1"  # must equal cit_study.lavis.LAVIS_REFERENCE_FORMAT
PROJECTIONS = ("opt_proj", "t5_proj", "llm_proj")  # LAVIS's name for the projection, by model family
LLM_FIELDS = ("opt_model", "t5_model", "llm_model")  # LAVIS config fields naming the LLM to load


def build(name, model_type, weights, llm=None):
    "The LAVIS model `name`/`model_type` in float32 on the CPU, with the local checkpoint `weights` loaded over it."
    from omegaconf import OmegaConf
    from lavis.common.registry import registry
    import lavis.models  # noqa: F401  (registers the model classes)
    cls = registry.get_model_class(name)
    if cls is None: raise SystemExit(f"unknown LAVIS model {name!r}")
    cfg = OmegaConf.load(cls.default_config_path(model_type))
    mcfg = cfg.model
    mcfg.load_finetuned, mcfg.load_pretrained, mcfg.vit_precision = False, False, "fp32"  # no released checkpoint download
    if llm:
        for f in LLM_FIELDS:
            if f in mcfg: mcfg[f] = llm
    model = cls.from_config(mcfg)
    ckpt = torch.load(weights, map_location="cpu")
    msg = model.load_state_dict(ckpt.get("model", ckpt), strict=False)
    print(f"{weights}: {len(msg.missing_keys)} LAVIS keys not in the file (frozen parts come from LAVIS's own sources), "
          f"{len(msg.unexpected_keys)} unexpected: {msg.unexpected_keys[:10]}")
    return model.float().eval(), cfg


@torch.no_grad()
def reference_outputs(model, pixel_values, prompts=None):
    "Each stage of a LAVIS model (its attribute names: visual_encoder, ln_vision, Qformer, query_tokens, *_proj) on `pixel_values`."
    image_embeds = model.ln_vision(model.visual_encoder(pixel_values))
    B, nq = image_embeds.shape[0], model.query_tokens.shape[1]
    kw = dict(query_embeds=model.query_tokens.expand(B, -1, -1), encoder_hidden_states=image_embeds,
              encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long), return_dict=True)
    out = {"pixel_values": pixel_values, "image_embeds": image_embeds}
    if prompts:  # InstructBLIP: the instruction goes through the Q-Former with the queries
        if not getattr(model, "qformer_text_input", False): raise SystemExit("--prompt: this model's Q-Former reads no text")
        t = model.tokenizer(prompts, padding="longest", truncation=True, max_length=getattr(model, "max_txt_len", 128),
                            return_tensors="pt")
        mask = torch.cat([torch.ones(B, nq, dtype=torch.long), t.attention_mask], 1)
        q = model.Qformer.bert(t.input_ids, attention_mask=mask, **kw)
        out.update(qformer_input_ids=t.input_ids, qformer_attention_mask=t.attention_mask)
    else:
        q = model.Qformer.bert(**kw)
    query_output = q.last_hidden_state[:, :nq]
    proj = next(getattr(model, n) for n in PROJECTIONS if getattr(model, n, None) is not None)
    out.update(query_output=query_output, language_projection=proj(query_output))
    return out


def save_reference(path, outputs, meta):
    "Write `outputs` (name -> tensor) and `meta` (name -> str) in the format `check_lavis_reference` reads."
    obj = {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu() for k, v in outputs.items()}
    torch.save({"format": FORMAT, "meta": {k: str(v) for k, v in meta.items()}, **obj}, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="LAVIS architecture, e.g. blip2_opt, blip2_t5, blip2_t5_instruct")
    p.add_argument("--model-type", required=True, help="LAVIS model type, e.g. pretrain_opt2.7b, flant5xl")
    p.add_argument("--weights", required=True, help="local LAVIS checkpoint (.pth) to load")
    p.add_argument("--images", nargs="+", required=True, help="image files to run")
    p.add_argument("--prompt", default=None, help="instruction for InstructBLIP's Q-Former (one for every image)")
    p.add_argument("--llm", default=None, help="local folder of the LLM, replacing the config's hub name")
    p.add_argument("--out", required=True, help="reference file to write (.pt)")
    a = p.parse_args(argv)
    from PIL import Image
    from lavis.models import load_preprocess
    model, cfg = build(a.name, a.model_type, a.weights, a.llm)
    vis, _ = load_preprocess(cfg.preprocess)
    pixels = torch.stack([vis["eval"](Image.open(f).convert("RGB")) for f in a.images]).float()
    outs = reference_outputs(model, pixels, [a.prompt] * len(a.images) if a.prompt else None)
    save_reference(a.out, outs, dict(name=a.name, model_type=a.model_type, weights=a.weights, images=" ".join(a.images)))
    print(f"wrote {a.out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in outs.items()))


if __name__ == "__main__":
    main()

from snakemake.utils import min_version

from expertalign import previous_results

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/sentences.smk"
include: "workflow/rules/experts.smk"
include: "workflow/rules/alignment.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/pilot.smk"
include: "workflow/rules/causal.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


# A run that starts jobs keeps the config it used, merged, beside its results, and the old
# outputs of the jobs it reruns, until they succeed (expertalign.previous_results).
onstart:
    print(
        f"effective config: {write_effective_config(config, RESULTS, CONFIG_FILES)}"
    )
    previous_results.keep_previous(workflow, RESULTS)


onsuccess:
    previous_results.discard_previous(RESULTS)


# Snakemake deletes a rerun job's old outputs before it runs: a failed job gets them back.
onerror:
    previous_results.restore_previous(RESULTS)

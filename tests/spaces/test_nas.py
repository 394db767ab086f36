import json

import pytest

from spaces import Float, Space, SpaceError
from spaces.nas import DARTS_OPS, NB201_OPS, CellGenotype, DartsCell, Genotype, NB201Cell

PAPER = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DARTS_V2 = (  # the DARTS (2nd order) genotype from the paper, in this notation
    "normal:|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|skip_connect~0|sep_conv_3x3~1|"
    "+|skip_connect~0|dil_conv_3x3~2| "
    "reduce:|max_pool_3x3~0|max_pool_3x3~1|+|skip_connect~2|max_pool_3x3~1|+|max_pool_3x3~0|skip_connect~2|"
    "+|skip_connect~2|max_pool_3x3~1|"
)


def test_nb201_standard_arch_string_round_trips_exactly():
    genotype = NB201Cell().genotype(PAPER)
    assert genotype.to_string() == PAPER
    assert genotype.cells["cell"].nodes[2] == (("skip_connect", 0), ("nor_conv_3x3", 1), ("skip_connect", 2))
    assert list(genotype.cells["cell"].edges())[1] == (1, "nor_conv_3x3", 0)


def test_all_15625_nb201_cells_round_trip():
    cell = NB201Cell()
    values = cell.all_values()
    assert len(values) == len(set(values)) == cell.size == 15625 == 5 ** 6
    for value in values:
        genotype = cell.genotype(value)
        assert genotype.to_string() == value
        assert Genotype.from_json(genotype.to_json()) == genotype
        edges = genotype.cells["cell"].edges()  # node counted from 0 here; decision names count from 1
        assert cell.assemble({f"node{k + 1}.in{i}": op for k, op, i in edges}) == value


@pytest.mark.parametrize("value, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "has 3 computed nodes (got 2)"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "node 2 must have 2 edges"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~5|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "node 2 edge 2: input index must be 1 (got 5)"),
    ("|conv_9x9~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "unknown op 'conv_9x9'"),
    ("nor_conv_3x3~0", "each node is written |op~input|"),
    ("|nor_conv_3x3-0|", "each edge is written op~input"),
    (42, "a genotype is a string"),
])
def test_nb201_validation_messages(value, message):
    with pytest.raises(SpaceError, match=message.replace("|", r"\|").replace("(", r"\(").replace(")", r"\)")):
        NB201Cell().genotype(value)
    assert not NB201Cell().contains(value)


def test_darts_cells_validate_and_round_trip():
    cell = DartsCell()
    genotype = cell.genotype(DARTS_V2)
    assert genotype.to_string() == DARTS_V2 and set(genotype.cells) == {"normal", "reduce"}
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
    assert hash(Genotype.from_string(DARTS_V2)) == hash(genotype)
    bad_input = DARTS_V2.replace("dil_conv_3x3~2|", "dil_conv_3x3~9|")
    with pytest.raises(SpaceError, match="normal cell node 3: input index 9 out of range 0..4"):
        cell.genotype(bad_input)
    with pytest.raises(SpaceError, match="must have 2 edges"):
        cell.genotype(DARTS_V2.replace("|skip_connect~0|dil_conv_3x3~2|", "|skip_connect~0|"))
    with pytest.raises(SpaceError, match="two inputs must be distinct"):
        cell.genotype(DARTS_V2.replace("|sep_conv_3x3~0|sep_conv_3x3~1|+", "|sep_conv_3x3~1|sep_conv_3x3~1|+", 1))
    with pytest.raises(SpaceError, match="unknown op 'none'"):
        cell.genotype(DARTS_V2.replace("max_pool_3x3~0|max", "none~0|max"))
    with pytest.raises(SpaceError, match="has cells normal, reduce"):
        cell.genotype(DARTS_V2.split(" ")[0])
    normal_only = DartsCell(nodes=2, reduction=False)
    assert normal_only.cell_names == ("normal",)
    with pytest.raises(SpaceError, match="expected 2 intermediate nodes"):
        normal_only.genotype("normal:" + DARTS_V2.split(" ")[0].removeprefix("normal:"))


def test_darts_decisions_assemble_valid_genotypes():
    cell = DartsCell(nodes=3, ops=("sep_conv_3x3", "skip_connect"))
    decisions = dict(cell.decisions())
    assert decisions["normal.node2.inputs"] == ("0,1", "0,2", "0,3", "1,2", "1,3", "2,3")
    chosen = {key: choices[-1] for key, choices in cell.decisions()}
    value = cell.assemble(chosen)
    assert cell.contains(value) and value.startswith("normal:|skip_connect~0|skip_connect~1|")
    assert cell.size == (1 * 4 * 3 * 4 * 6 * 4) ** 2


@pytest.mark.parametrize("raw, path, rule", [
    ({"cell": {"type": "nb201_cell", "ops": []}}, "cell.ops", "non-empty list"),
    ({"cell": {"type": "nb201_cell", "ops": ["a", "a"]}}, "cell.ops", "unique"),
    ({"cell": {"type": "nb201_cell", "ops": ["a|b"]}}, "cell.ops", "identifiers"),
    ({"cell": {"type": "darts_cell", "nodes": 0}}, "cell.nodes", "integer in [1, 16]"),
    ({"cell": {"type": "darts_cell", "edges": 3}}, "cell.edges", "unknown key"),
])
def test_cell_parameter_validation(raw, path, rule):
    with pytest.raises(SpaceError) as info:
        Space(raw)
    assert info.value.path == path and rule in str(info.value)


def test_cells_live_in_spaces_with_hyperparameters_and_conditions():
    yaml_text = """
    arch: {type: categorical, choices: [nb201, darts]}
    cell: {type: nb201_cell, when: {arch: nb201}}
    darts: {type: darts_cell, nodes: 3, ops: [sep_conv_3x3, skip_connect, max_pool_3x3], when: {arch: darts}}
    lr: {type: float, low: 1e-3, high: 1e-1, log: true}
    channels: {type: int, low: 8, high: 64, log: true}
    width_multiplier: {type: float, low: 0.5, high: 2.0}
    """
    space = Space.from_yaml(yaml_text)
    assert Space.from_json(space.to_json()) == space and Space.from_yaml(space.to_yaml()) == space
    assert space["cell"] == NB201Cell(when={"arch": "nb201"}) and space["darts"].ops[-1] == "max_pool_3x3"
    python = Space({"cell": NB201Cell(), "lr": Float(1e-3, 1e-1, log=True)})
    assert python.to_dict()["cell"] == {"type": "nb201_cell"}
    python.check({"cell": PAPER, "lr": 0.01})
    with pytest.raises(SpaceError, match="cell: value"):
        python.check({"cell": PAPER.replace("avg_pool_3x3", "max_pool_9"), "lr": 0.01})
    assert len(Space({"cell": NB201Cell(ops=("none", "skip_connect"))}).grid()["cell"]) == 64
    with pytest.raises(SpaceError, match="too many values for a grid"):
        python.grid()


def test_cell_genotype_rejects_garbage():
    with pytest.raises(SpaceError, match="a cell is a list of nodes"):
        CellGenotype(5)
    assert NB201_OPS[0] == "none" and "sep_conv_3x3" in DARTS_OPS

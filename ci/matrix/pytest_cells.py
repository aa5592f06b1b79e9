"""pytest plugin the matrix loads into its runs (-p ci.matrix.pytest_cells):
each test's JUnit entry carries what places it in the matrix, as
properties: matrix_nodeid, matrix_transport (its lab_transport),
matrix_size (data tests) and matrix_same_node (its ends are processes of
one node). Set at collection, so they reach the controller from xdist
workers with the report, and appear in the XML whatever the outcome."""


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        props = [("matrix_nodeid", item.nodeid)]
        if "lab_transport" in params:
            props.append(("matrix_transport", params["lab_transport"]))
        if "size" in params:
            props.append(("matrix_size", params["size"]))
        if item.get_closest_marker("same_node") is not None:
            props.append(("matrix_same_node", 1))
        item.user_properties.extend(props)

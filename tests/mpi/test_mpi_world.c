/* The MPI plumbing: ranks, agreement on failure with the failing rank's message. */
#include "../../base/check.h"
#include "../../harness/exec/mpi/mpi_world.h"
#include "../test.h"

static struct mpi_world world(void)
{
    struct mpi_world w;
    mpi_world_init(NULL, NULL, &w);   /* MPI is already up: fills the fields */
    return w;
}

TEST(test_every_rank_knows_its_rank_local_rank_and_host)
{
    struct mpi_world w = world();
    CHECK(w.size >= 1);
    CHECK(w.rank >= 0 && w.rank < w.size);
    CHECK(w.local_rank >= 0 && w.local_rank < w.local_size);
    CHECK(w.host[0] != 0);
    CHECK(w.timeout_s > 0);
}

TEST(test_agree_passes_when_every_rank_succeeds)
{
    struct mpi_world w = world();
    CHECK_EQ_INT(mpi_world_agree(&w, PB_OK, "testing"), PB_OK);
}

TEST(test_a_failing_rank_stops_every_rank_with_its_message)
{
    struct mpi_world w = world();
    int last = w.size - 1;
    int mine = PB_OK;
    if (w.rank == last) mine = pb_fail("boom on purpose");
    CHECK_EQ_INT(mpi_world_agree(&w, mine, "testing failure"), PB_ERR);
    char expect[64];
    snprintf(expect, sizeof expect, "rank %d (", last);
    CHECK(strstr(pb_last_error(), expect) != NULL);
    CHECK(strstr(pb_last_error(), "boom on purpose") != NULL);
    CHECK(strstr(pb_last_error(), "testing failure") != NULL);
}

TEST(test_the_lowest_failing_rank_speaks_for_all)
{
    struct mpi_world w = world();
    int mine = pb_fail("failure of rank %d", w.rank);
    CHECK_EQ_INT(mpi_world_agree(&w, mine, "testing"), PB_ERR);
    CHECK(strstr(pb_last_error(), "failure of rank 0") != NULL);
}

TEST(test_bcast_gather_and_max_move_bytes_between_ranks)
{
    struct mpi_world w = world();
    char text[32] = "";
    if (w.rank == 0) snprintf(text, sizeof text, "from rank 0");
    CHECK_EQ_INT(mpi_world_bcast(&w, text, sizeof text, 0, "testing"), PB_OK);
    CHECK(strcmp(text, "from rank 0") == 0);
    int mine = 10 + w.rank, all[64] = {0};
    CHECK_EQ_INT(mpi_world_gather(&w, &mine, all, sizeof mine, "testing"), PB_OK);
    for (int r = 0; w.rank == 0 && r < w.size && r < 64; r++) CHECK_EQ_INT(all[r], 10 + r);
    double v = w.rank * 1.5;
    CHECK_EQ_INT(mpi_world_max(&w, &v, "testing"), PB_OK);
    CHECK_NEAR(v, (w.size - 1) * 1.5, 0);
}
